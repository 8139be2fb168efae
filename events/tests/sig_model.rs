//! `Grip-Sig` against a model, over many generated tokens: a token is accepted exactly when it is
//! one the key's holder made (byte for byte, give or take surrounding whitespace), with an `exp`
//! still ahead, checked with a key list that holds that key. Every mutation an attacker can make of
//! a captured token (any byte changed, dropped or added; segments swapped, cut or re-encoded; the
//! claims rewritten under the old signature; another algorithm named) and every key an attacker can
//! guess (near misses of the real one included) is refused with the status the model expects.
//!
//! The seed is printed; `SIDESTREAM_SIG_SEED=N` replays one run.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sidestream_events::sig::{self, Refusal};

const CASES: usize = 20_000;
const NOW: u64 = 1_800_000_000;

fn seed() -> u64 {
    std::env::var("SIDESTREAM_SIG_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What a forger does to a genuine token, and whether the result is still that token.
fn mutate(rng: &mut SmallRng, token: &str) -> (String, &'static str) {
    let parts: Vec<&str> = token.split('.').collect();
    let mut bytes = token.as_bytes().to_vec();
    let at = rng.random_range(0..bytes.len());
    match rng.random_range(0..12) {
        0 => {
            let mut byte = rng.random_range(0x21u8..0x7f);
            while byte == bytes[at] {
                byte = rng.random_range(0x21u8..0x7f);
            }
            bytes[at] = byte;
            (String::from_utf8(bytes).unwrap(), "a byte changed")
        }
        1 => {
            bytes.remove(at);
            (String::from_utf8(bytes).unwrap(), "a byte dropped")
        }
        2 => {
            bytes.insert(at, rng.random_range(0x21u8..0x7f));
            (String::from_utf8(bytes).unwrap(), "a byte added")
        }
        3 => (format!("{}.{}.{}", parts[1], parts[0], parts[2]), "header and claims swapped"),
        4 => (format!("{}.{}", parts[0], parts[1]), "the signature cut off"),
        5 => (format!("{token}.{}", parts[2]), "a fourth segment"),
        6 => {
            // The claims rewritten (a later exp, another issuer) under the genuine signature.
            let exp = NOW + rng.random_range(1..1_000_000);
            let claims = b64(format!(r#"{{"iss":"sidestream","exp":{exp}}}"#).as_bytes());
            (format!("{}.{claims}.{}", parts[0], parts[2]), "claims rewritten")
        }
        7 => {
            // Another algorithm named, signature kept or emptied.
            let alg =
                ["none", "None", "HS384", "HS512", "RS256", "hs256", "HS256 ", ""][rng.random_range(0..8)];
            let header = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
            let signature = if rng.random_bool(0.5) { parts[2] } else { "" };
            (format!("{header}.{}.{signature}", parts[1]), "another algorithm")
        }
        8 => {
            // The same bytes in another base64 alphabet or with padding: not the token signed.
            let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
            let other =
                if rng.random_bool(0.5) { STANDARD.encode(&signature) } else { URL_SAFE.encode(&signature) };
            if other == parts[2] {
                return (token.to_owned(), "unchanged");
            }
            (format!("{}.{}.{other}", parts[0], parts[1]), "signature re-encoded")
        }
        9 => {
            let pad = [" ", "\t", "  \t "][rng.random_range(0..3)];
            (format!("{pad}{token}{pad}"), "unchanged") // whitespace around a header value
        }
        10 => (token.replacen('.', "..", 1), "an empty segment"),
        _ => (token.to_owned(), "unchanged"),
    }
}

/// Keys a forger may try: near misses of the real one and unrelated guesses.
fn guess(rng: &mut SmallRng, key: &[u8]) -> Vec<u8> {
    let mut guess = key.to_vec();
    match rng.random_range(0..4) {
        0 => {
            let at = rng.random_range(0..guess.len());
            guess[at] ^= 1 << rng.random_range(0..8);
        }
        1 => guess.truncate(rng.random_range(0..guess.len())),
        2 => guess.push(rng.random()),
        _ => guess = (0..rng.random_range(1..64)).map(|_| rng.random()).collect(),
    }
    guess
}

/// Whether HMAC-SHA256 keyed by `a` and by `b` is the same function (empty keys are never used).
fn same_hmac_key(a: &[u8], b: &[u8]) -> bool {
    let trimmed = |k: &[u8]| k.iter().rposition(|&byte| byte != 0).map_or(0, |last| last + 1);
    match (a.len(), b.len()) {
        (0, _) | (_, 0) => false,
        (1..=64, 1..=64) => a[..trimmed(a)] == b[..trimmed(b)],
        _ => a == b,
    }
}

#[test]
fn only_the_key_holders_own_unexpired_tokens_pass() {
    let seed = seed();
    eprintln!("sig model: seed {seed} (SIDESTREAM_SIG_SEED={seed} replays it)");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut refused = std::collections::BTreeMap::<&str, usize>::new();
    for case in 0..CASES {
        let key: Vec<u8> = (0..rng.random_range(1..65)).map(|_| rng.random()).collect();
        let exp = if rng.random_bool(0.2) {
            NOW - rng.random_range(0..=1_000)
        } else {
            NOW + rng.random_range(1..=300)
        };
        let genuine = sig::sign(&key, sig::ISSUER, exp);
        let (token, what) = mutate(&mut rng, &genuine);

        // The verifier's keys: the real one (alone, or beside the previous one in a rotation), or
        // only guesses.
        let holds_key = rng.random_bool(0.8);
        let previous = guess(&mut rng, &key);
        let mut keys: Vec<&[u8]> = if holds_key { vec![&key] } else { vec![&previous] };
        if holds_key && rng.random_bool(0.3) {
            keys.insert(rng.random_range(0..2), &previous);
        }

        // HMAC pads a key of up to a block (64 bytes) with zeros: a guess that only adds or drops
        // trailing zero bytes *is* the key, and passes as it must.
        let holds_key = keys.iter().any(|k| same_hmac_key(k, &key));
        // Anything else is refused: a token that is not the genuine one, a verifier without the
        // key, an expired token.
        let expected = if token.trim() == genuine && holds_key && exp > NOW { Ok(()) } else { Err(()) };
        let got = sig::verify(Some(&token), &keys, NOW);
        assert_eq!(
            got.map_err(|_| ()),
            expected,
            "case {case} (seed {seed}): {what}, holds key {holds_key}, exp {exp}: {got:?} for {token:?}"
        );
        if holds_key && token.trim() == genuine && exp <= NOW {
            assert_eq!(got, Err(Refusal::Expired), "case {case} (seed {seed}): an expired token says so");
        }
        if let Err(refusal) = got {
            assert_eq!(
                refusal.status(),
                403,
                "case {case} (seed {seed}): a token that is there is bad, not missing"
            );
            *refused.entry(what).or_default() += 1;
        }
    }
    eprintln!("sig model: {CASES} tokens, refused by kind: {refused:?}");
    // Every kind of forgery was tried and refused at least once, so the run covered them all.
    assert!(refused.len() >= 10, "seed {seed}: only {refused:?}");
}
