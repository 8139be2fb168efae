//! `Grip-Sig`: the signature that tells a component a request came from its gateway.
//!
//! Pushpin and Fastly Fanout sign every request they make to a backend with a JWT in the
//! `Grip-Sig` header (<https://pushpin.org/docs/advanced/#signing>): HS256 over the claims
//! `{"iss": ..., "exp": ...}`, keyed by a secret the backend knows. sidestream's gateway signs
//! the same way, so a backend verifies with its GRIP library unchanged (Python `gripcontrol`'s
//! `validate_sig`, npm `@fanoutio/grip`'s `validateSig`), and a Rust component with [`verify`].
//!
//! Only HS256 is accepted: a token whose header names any other algorithm (`none` among them) is
//! refused before its signature is looked at.
//!
//! ```
//! use sidestream_events::sig::{Refusal, sign, verify};
//!
//! let token = sign(b"the key", "sidestream", 1_000_300);
//! assert_eq!(verify(Some(&token), &[b"the key"], 1_000_000), Ok(()));
//! assert_eq!(verify(Some(&token), &[b"another key"], 1_000_000), Err(Refusal::BadSignature));
//! assert_eq!(verify(Some(&token), &[b"the key"], 1_000_300), Err(Refusal::Expired));
//! assert_eq!(verify(None, &[b"the key"], 1_000_000), Err(Refusal::Missing));
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The request header that carries the signature.
pub const HEADER: &str = "grip-sig";

/// The issuer sidestream's gateway signs as (Pushpin's default is `pushpin`).
pub const ISSUER: &str = "sidestream";

/// The encoded JOSE header of every token [`sign`] makes: `{"alg":"HS256","typ":"JWT"}`.
const JOSE_HS256: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The longest token [`verify`] reads: a GRIP token is about 120 bytes; a header far longer is
/// not one, and is refused before any decoding.
const MAX_TOKEN: usize = 4096;

/// Why a request's signature was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Grip-Sig` header: the request did not come through a gateway (answer `401`).
    Missing,
    /// Not a JWT, or claims that are not JSON with a numeric `exp` (answer `403`).
    Malformed,
    /// A JWT signed with another algorithm than HS256, `none` among them (answer `403`).
    Algorithm,
    /// Signed with none of the keys (answer `403`).
    BadSignature,
    /// Its `exp` has passed (answer `403`).
    Expired,
}

impl Refusal {
    /// The HTTP status a component answers with: `401` without a signature, else `403`.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Missing => 401,
            _ => 403,
        }
    }

    /// One line for logs and for the refusal's body.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "no Grip-Sig: only the gateway may send WebSocket events",
            Refusal::Malformed => "Grip-Sig is not a JWT",
            Refusal::Algorithm => "Grip-Sig is not signed with HS256",
            Refusal::BadSignature => "Grip-Sig is not signed with this component's key",
            Refusal::Expired => "Grip-Sig has expired",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Refusal {}

/// A token for `Grip-Sig`: HS256 over `{"iss": issuer, "exp": exp}` (Unix seconds), keyed by `key`.
pub fn sign(key: &[u8], issuer: &str, exp: u64) -> String {
    let claims = serde_json::json!({"iss": issuer, "exp": exp}).to_string();
    let mut token = format!("{JOSE_HS256}.{}", URL_SAFE_NO_PAD.encode(claims));
    let signature = mac(key, token.as_bytes()).finalize().into_bytes();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

/// Checks a request's `Grip-Sig` value at `now` (Unix seconds): HS256, signed with one of `keys`
/// (two during a key rotation; empty keys are skipped), not expired.
pub fn verify(token: Option<&str>, keys: &[&[u8]], now: u64) -> Result<(), Refusal> {
    let token = token.ok_or(Refusal::Missing)?.trim();
    if token.len() > MAX_TOKEN {
        return Err(Refusal::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    // The header Pushpin and the gateway send is read without decoding it; any other is decoded.
    if header != JOSE_HS256 {
        let header: serde_json::Value = decode_json(header)?;
        if header.get("alg").and_then(|alg| alg.as_str()) != Some("HS256") {
            return Err(Refusal::Algorithm);
        }
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| Refusal::Malformed)?;
    let signed = &token[..header_and_claims_len(token)];
    let genuine = keys
        .iter()
        .filter(|key| !key.is_empty())
        .any(|key| mac(key, signed.as_bytes()).verify_slice(&signature).is_ok());
    if !genuine {
        return Err(Refusal::BadSignature);
    }
    let claims: serde_json::Value = decode_json(claims)?;
    let exp = claims.get("exp").and_then(serde_json::Value::as_u64).ok_or(Refusal::Malformed)?;
    if now >= exp {
        return Err(Refusal::Expired);
    }
    Ok(())
}

fn mac(key: &[u8], message: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(message);
    mac
}

fn decode_json(part: &str) -> Result<serde_json::Value, Refusal> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| Refusal::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed)
}

/// The length of `header.claims`, the signed part of a token with exactly two dots.
fn header_and_claims_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"changeme";

    fn token_with(header: &str, claims: &str, key: &[u8]) -> String {
        let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = mac(key, signed.as_bytes()).finalize().into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let token = sign(KEY, ISSUER, 100);
        assert_eq!(verify(Some(&token), &[KEY], 99), Ok(()));
        assert_eq!(verify(Some(&token), &[KEY], 100), Err(Refusal::Expired));
        assert_eq!(verify(Some(&format!(" {token} ")), &[KEY], 0), Ok(()), "surrounding space");
    }

    #[test]
    fn its_header_is_the_one_pushpin_sends() {
        let token = sign(KEY, ISSUER, 100);
        let header = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap())
                .unwrap();
        assert_eq!(claims, serde_json::json!({"iss": "sidestream", "exp": 100}));
    }

    #[test]
    fn any_hs256_header_verifies_not_only_the_usual_one() {
        // Another GRIP library may order or space its header differently, or drop `typ`.
        let claims = r#"{"iss":"pushpin","exp":100}"#;
        for header in [r#"{"typ":"JWT","alg":"HS256"}"#, r#"{"alg": "HS256"}"#, r#"{"alg":"HS256"}"#] {
            assert_eq!(verify(Some(&token_with(header, claims, KEY)), &[KEY], 0), Ok(()), "{header}");
        }
        assert_eq!(
            verify(Some(&token_with(r#"{"typ":"JWT","alg":"HS384"}"#, claims, KEY)), &[KEY], 0),
            Err(Refusal::Algorithm)
        );
    }

    #[test]
    fn either_key_of_a_rotation_verifies() {
        let old = sign(b"old", ISSUER, 100);
        let new = sign(b"new", ISSUER, 100);
        let keys: [&[u8]; 2] = [b"new", b"old"];
        assert_eq!(verify(Some(&old), &keys, 0), Ok(()));
        assert_eq!(verify(Some(&new), &keys, 0), Ok(()));
        assert_eq!(verify(Some(&new), &[b"", b"old"], 0), Err(Refusal::BadSignature));
        assert_eq!(verify(Some(&new), &[], 0), Err(Refusal::BadSignature), "no key verifies nothing");
    }

    #[test]
    fn forgeries_are_refused() {
        let claims = r#"{"iss":"sidestream","exp":100}"#;
        // `alg: none` with an empty signature, the classic JWT forgery.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        );
        assert_eq!(verify(Some(&none), &[KEY], 0), Err(Refusal::Algorithm));
        let hs512 = token_with(r#"{"alg":"HS512"}"#, claims, KEY);
        assert_eq!(verify(Some(&hs512), &[KEY], 0), Err(Refusal::Algorithm));
        let wrong_key = token_with(r#"{"alg":"HS256"}"#, claims, b"guess");
        assert_eq!(verify(Some(&wrong_key), &[KEY], 0), Err(Refusal::BadSignature));
        // Claims changed after signing: the signature no longer covers them.
        let token = sign(KEY, ISSUER, 100);
        let mut parts: Vec<&str> = token.split('.').collect();
        let later = URL_SAFE_NO_PAD.encode(r#"{"iss":"sidestream","exp":999999}"#);
        parts[1] = &later;
        assert_eq!(verify(Some(&parts.join(".")), &[KEY], 0), Err(Refusal::BadSignature));
        let no_exp = token_with(r#"{"alg":"HS256"}"#, r#"{"iss":"x"}"#, KEY);
        assert_eq!(verify(Some(&no_exp), &[KEY], 0), Err(Refusal::Malformed));
        for junk in ["", "a.b", "a.b.c.d", "!!!.???.***", &"x".repeat(MAX_TOKEN + 1)] {
            assert_eq!(verify(Some(junk), &[KEY], 0), Err(Refusal::Malformed), "{junk:.20}");
        }
    }

    #[test]
    fn statuses_tell_missing_from_bad() {
        assert_eq!(Refusal::Missing.status(), 401);
        assert_eq!(Refusal::Expired.status(), 403);
        assert_eq!(Refusal::Algorithm.status(), 403);
    }
}
