//! The example apps of `examples/` (a TypeScript and a Python Spin component, built by `make
//! examples`), for the tests that run them: where they are, the key a pair of gateways shares, and
//! forged requests to their `/room`.
#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sidestream_events::sig;

use super::{Reply, post};

/// An example component: its language and its `.wasm`, as scripts/examples.sh builds it.
#[derive(Clone, Copy, Debug)]
pub struct Example {
    pub name: &'static str,
    wasm: &'static str,
}

pub const TYPESCRIPT: Example =
    Example { name: "typescript", wasm: "examples/typescript/dist/sidestream-typescript.wasm" };
pub const PYTHON: Example = Example { name: "python", wasm: "examples/python/sidestream-python.wasm" };

impl Example {
    pub fn path(&self) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(self.wasm);
        assert!(path.exists(), "{} is missing: run `make examples` first", path.display());
        path.to_str().expect("a UTF-8 path").to_owned()
    }
}

/// A file holding a signing key (`--grip-key-file`), removed on drop: gateways in front of one
/// another share it, so the one behind trusts what the one in front signed.
pub struct KeyFile(pub PathBuf);

impl KeyFile {
    pub fn new(key: &str) -> Self {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("sidestream-grip-key-{}-{n}", std::process::id()));
        std::fs::write(&path, key).expect("write the key file");
        KeyFile(path)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The texts of room messages.
pub fn texts(messages: &[Value]) -> Vec<&str> {
    messages.iter().map(|m| m["text"].as_str().expect("a text")).collect()
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

pub fn jwt(header: &serde_json::Value, claims: &serde_json::Value, signature: &[u8]) -> String {
    let part = |value: &serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.{}", part(header), part(claims), URL_SAFE_NO_PAD.encode(signature))
}

/// Each signature the app must refuse, and what it is.
pub fn bad_signatures(key: &str) -> Vec<(&'static str, String)> {
    let claims = json!({"iss": "sidestream", "exp": now() + 300});
    let good = sig::sign(key.as_bytes(), sig::ISSUER, now() + 300);
    let good_signature = URL_SAFE_NO_PAD.decode(good.rsplit('.').next().unwrap()).unwrap();
    vec![
        ("another key", sig::sign(b"a guess at the key, just as long", sig::ISSUER, now() + 300)),
        ("expired", sig::sign(key.as_bytes(), sig::ISSUER, now() - 1)),
        ("alg none", jwt(&json!({"alg": "none", "typ": "JWT"}), &claims, b"")),
        // The right key's signature under a header naming another algorithm.
        ("alg HS512", jwt(&json!({"alg": "HS512", "typ": "JWT"}), &claims, &good_signature)),
        ("garbage", "not.a.jwt".to_owned()),
        ("the signature of other claims", {
            let (head, _) = good.split_once('.').unwrap();
            let forged = URL_SAFE_NO_PAD.encode(json!({"iss": "x", "exp": now() + 9999}).to_string());
            format!("{head}.{forged}.{}", good.rsplit('.').next().unwrap())
        }),
    ]
}

/// A plain request posing as a member of room `room` saying "hi", every gateway-owned header
/// forged, with `signature` as its `Grip-Sig` if any.
pub async fn forge(addr: SocketAddr, room: &str, signature: Option<&str>) -> Reply {
    let mut headers = vec![
        ("content-type", "application/websocket-events"),
        ("meta-room", room),
        ("meta-name", "admin"),
        ("connection-id", "x"),
    ];
    if let Some(signature) = signature {
        headers.push(("grip-sig", signature));
    }
    post(addr, "/room", &headers, "TEXT 2\r\nhi\r\n").await
}
