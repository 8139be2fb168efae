//! Only the gateway speaks for a connection. Every WebSocket-over-HTTP request it makes to the
//! component carries `Grip-Sig`, a JWT signed with the gateway's key as Pushpin signs (see
//! [`sidestream_events::sig`]), and every header only the gateway may set (`Grip-*`, `Meta-*`,
//! `Connection-Id`, `Sidestream-*`) is removed from what a client sends, on every path: a plain
//! HTTP request to the public listener reaches the component unsigned, so it cannot pose as a
//! connection's event.
//!
//! The key comes from `--grip-key-file`; the embedded host without one generates a key at
//! start-up and gives it to its component (the Spin variable `grip_key`). A request that arrives
//! already signed with this gateway's key was made by a gateway sharing it (one gateway in front of
//! another's embedded host): its own headers are kept.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use sidestream_events::reply::{CONNECTION_ID, META_PREFIX};
use sidestream_events::sig;

/// How long a signature is good for: short, as a captured one can be replayed until then, and
/// long against clock skew between the gateway and the component's node.
const LIFETIME: Duration = Duration::from_secs(300);

/// A signature is made anew once less than this much of its life is left, so one is not made per
/// request (an HMAC and two base64 encodings on every WebSocket message) and none goes out that
/// expires in flight.
const RENEW_BEFORE: Duration = Duration::from_secs(240);

/// The shortest key a key file may hold: HS256 keys shorter than the hash are guessable.
pub const MIN_KEY_BYTES: usize = 16;

/// The header the signature goes in.
pub const GRIP_SIG: HeaderName = HeaderName::from_static(sig::HEADER);

/// Signs the gateway's requests to the component.
pub struct Signer {
    key: String,
    /// The signature in use, and when it expires (Unix seconds).
    current: Mutex<(HeaderValue, u64)>,
}

impl Signer {
    /// A signer with this key (as `--grip-key-file` holds it, surrounding whitespace aside).
    pub fn new(key: String) -> Self {
        Signer { key, current: Mutex::new((HeaderValue::from_static(""), 0)) }
    }

    /// The key of `--grip-key-file`, or, for an embedded component (`generate`), a new random one.
    pub fn from_file(path: Option<&std::path::Path>, generate: bool) -> anyhow::Result<Self> {
        let Some(path) = path else {
            if !generate {
                bail!(
                    "--grip-key-file is required with --upstream: the component verifies the gateway's \
                     requests with the same key (its Spin variable grip_key)"
                );
            }
            let key: [u8; 32] = rand::random();
            return Ok(Signer::new(key.iter().map(|b| format!("{b:02x}")).collect()));
        };
        let key = crate::secret::read_secret("--grip-key-file", path)?;
        if key.len() < MIN_KEY_BYTES {
            bail!("--grip-key-file {} holds a key shorter than {MIN_KEY_BYTES} bytes", path.display());
        }
        Ok(Signer::new(key))
    }

    /// The key, for the embedded host's `grip_key` variable.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// A `Grip-Sig` value good for a few more minutes.
    pub fn signature(&self) -> HeaderValue {
        let now = now();
        let mut current = self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if current.1 <= now + RENEW_BEFORE.as_secs() {
            let exp = now + LIFETIME.as_secs();
            let token = sig::sign(self.key.as_bytes(), sig::ISSUER, exp);
            // A JWT is base64url and dots: always a valid header value.
            if let Ok(value) = HeaderValue::from_str(&token) {
                *current = (value, exp);
            }
        }
        current.0.clone()
    }

    /// Screens a client's plain HTTP request on its way to the component: every header only the
    /// gateway may set goes, unless a gateway with this key signed the request (one gateway in front
    /// of another's embedded host), which keeps them with its signature. Plain requests are not
    /// signed: only the WebSocket-over-HTTP requests the gateway makes itself carry its signature,
    /// so a component can tell them from anything a client sends.
    pub fn screen(&self, headers: &mut HeaderMap) {
        if !self.signed_here(headers) {
            strip_gateway_owned(headers);
        }
    }

    /// Whether the headers carry a valid signature made with this gateway's key.
    fn signed_here(&self, headers: &HeaderMap) -> bool {
        let token = headers.get(GRIP_SIG).and_then(|v| v.to_str().ok());
        token.is_some() && sig::verify(token, &[self.key.as_bytes()], now()).is_ok()
    }
}

/// Whether only the gateway may set this header: the protocol's own (`Grip-*`, `Meta-*`,
/// `Connection-Id`) and sidestream's (`Sidestream-*`, such as `Sidestream-Attempt`).
pub fn is_gateway_owned(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == CONNECTION_ID
        || name.starts_with(META_PREFIX)
        || name.starts_with("grip-")
        || name.starts_with("sidestream-")
}

/// Removes every header only the gateway may set.
pub fn strip_gateway_owned(headers: &mut HeaderMap) {
    let owned: Vec<HeaderName> = headers.keys().filter(|name| is_gateway_owned(name)).cloned().collect();
    for name in owned {
        headers.remove(name);
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new("0123456789abcdef0123".into())
    }

    #[test]
    fn a_clients_gateway_owned_headers_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("meta-user", "admin"),
            ("Meta-Room", "lobby"),
            ("connection-id", "x"),
            ("sidestream-attempt", "2"),
            ("grip-sig", "forged"),
            ("grip-last", "c; last-id=1"),
            ("cookie", "session=1"),
            ("x-metadata", "kept: not meta-"),
        ] {
            headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_static(value));
        }
        signer().screen(&mut headers);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["cookie", "x-metadata"], "and no signature is added to a plain request");
    }

    #[test]
    fn a_request_signed_with_the_same_key_keeps_its_headers() {
        let signer = signer();
        let mut headers = HeaderMap::new();
        headers.insert("meta-n", HeaderValue::from_static("3"));
        headers.insert(GRIP_SIG, signer.signature());
        signer.screen(&mut headers);
        assert_eq!(headers["meta-n"], "3");
        let token = headers[GRIP_SIG].to_str().unwrap();
        assert_eq!(sig::verify(Some(token), &[signer.key().as_bytes()], now()), Ok(()));

        let other = Signer::new("another key of enough length".into());
        let mut headers = HeaderMap::new();
        headers.insert("meta-n", HeaderValue::from_static("3"));
        headers.insert(GRIP_SIG, other.signature());
        signer.screen(&mut headers);
        assert!(headers.get("meta-n").is_none(), "signed with another key: not ours");
        assert!(headers.get(GRIP_SIG).is_none());
    }

    #[test]
    fn the_signature_is_reused_until_it_nears_its_end() {
        let signer = signer();
        let first = signer.signature();
        assert_eq!(signer.signature(), first);
        *signer.current.lock().unwrap() = (HeaderValue::from_static("old"), now() + 10);
        assert_ne!(signer.signature(), "old", "renewed with less than RENEW_BEFORE left");
    }

    #[test]
    fn key_files_must_hold_a_real_key() {
        let dir = std::env::temp_dir().join(format!("sidestream-grip-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "changeme\n").unwrap();
        assert!(Signer::from_file(Some(&short), true).is_err());
        let good = dir.join("good");
        std::fs::write(&good, "  a-key-of-twenty-bytes \n").unwrap();
        assert_eq!(Signer::from_file(Some(&good), false).unwrap().key(), "a-key-of-twenty-bytes");
        assert!(Signer::from_file(None, false).is_err(), "an upstream needs the key it verifies with");
        let generated = Signer::from_file(None, true).unwrap();
        assert_eq!(generated.key().len(), 64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
