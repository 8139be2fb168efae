//! Spin variables for the embedded component: `fermyon:spin/variables@2.0.0`, the interface
//! spin-sdk 5.2's `variables::get` imports, and the one Spin 3.6 (the SpinKube shim's) offers.
//! wasmtime's own `wasi:config` crate offers another version (`0.2.0-rc.1`) that Spin 3.6 does
//! not, and a component imports exactly one: so the host implements Spin's, from its WIT
//! (`shared/wit/spin-3.6.3/deps/spin@2.0.0/variables.wit`), as Spin's runtime does.
//!
//! The values are the gateway's own: `grip_key` is the key it signs with, `publish_url` its publish
//! API (served in-process), `publish_token` and `grip_key_previous` empty (nothing to rotate
//! in-process, and an in-process publish needs no token). Other names are undefined.

use std::collections::BTreeMap;
use std::sync::Arc;

wasmtime::component::bindgen!({
    inline: "
        package fermyon:spin@2.0.0;

        interface variables {
            get: func(name: string) -> result<string, error>;

            variant error {
                invalid-name(string),
                undefined(string),
                provider(string),
                other(string),
            }
        }

        world variables-host {
            import variables;
        }
    ",
});

pub use self::fermyon::spin::variables::{Error, Host, add_to_linker};

/// The variables one component version sees.
#[derive(Clone, Debug)]
pub struct Variables(Arc<BTreeMap<String, String>>);

impl Variables {
    /// The embedded component's variables: the gateway's key and its publish API.
    pub fn embedded(grip_key: &str, publish_url: &str) -> Self {
        let values = [
            ("grip_key", grip_key),
            ("grip_key_previous", ""),
            ("publish_url", publish_url),
            ("publish_token", ""),
        ];
        Variables(Arc::new(
            values.into_iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
        ))
    }

    /// A variable's value, with Spin's errors: a name that is not one (Spin's rule: lower-case
    /// letters, digits and `_`, starting with a letter) is invalid; a name nobody set is undefined.
    pub fn get(&self, name: &str) -> Result<String, Error> {
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::InvalidName(name.to_owned()));
        }
        self.0.get(name).cloned().ok_or_else(|| Error::Undefined(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_values_and_spins_errors() {
        let variables = Variables::embedded("k3y", "http://127.0.0.1:9090/publish/");
        assert_eq!(variables.get("grip_key").unwrap(), "k3y");
        assert_eq!(variables.get("publish_token").unwrap(), "");
        assert!(matches!(variables.get("region"), Err(Error::Undefined(name)) if name == "region"));
        assert!(matches!(variables.get("Grip_Key"), Err(Error::InvalidName(_))));
        assert!(matches!(variables.get("1st"), Err(Error::InvalidName(_))));
    }
}
