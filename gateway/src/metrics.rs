//! What every subsystem's metrics share: label values as enums, and the text exposition.
//!
//! Each subsystem owns a small `Metrics` struct beside its code, built by
//! `fn register(registry: &mut Registry) -> Self`; [`crate::server`] builds the one registry
//! (prefix `sidestream`), calls each `register`, and hands each part its own. Hot-path counters
//! (messages, bytes, pushes) are plain atomics; labelled families are only touched on rare events
//! (handshakes, closes, HTTP requests), so their lock never sits on the echo path.

use prometheus_client::registry::{Metric, Registry};

/// Declares an enum of label values, each encoded as the lowercase text written beside it (the
/// text the README, the dashboards and the tests use), so a typo in a label cannot compile.
/// `prometheus-client`'s derive would encode the variant's name as written, capitals and all.
#[macro_export]
macro_rules! label_values {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// The label value, as exposed.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl prometheus_client::encoding::EncodeLabelValue for $name {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
            ) -> std::fmt::Result {
                prometheus_client::encoding::EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}

/// Lets a family count by one enum of [`label_values!`] alone, under the label `$key`
/// (`Family<Reject, Counter>` exposes `{reason="origin"}`), without a struct around it.
#[macro_export]
macro_rules! label_set {
    ($name:ident, $key:literal) => {
        impl prometheus_client::encoding::EncodeLabelSet for $name {
            fn encode(&self, encoder: &mut prometheus_client::encoding::LabelSetEncoder) -> std::fmt::Result {
                use prometheus_client::encoding::{EncodeLabelKey, EncodeLabelValue};
                let mut label = encoder.encode_label();
                let mut key = label.encode_label_key()?;
                EncodeLabelKey::encode(&$key, &mut key)?;
                let mut value = key.encode_label_value()?;
                EncodeLabelValue::encode(self, &mut value)?;
                value.finish()
            }
        }
    };
}

/// The registry every subsystem registers in: its metrics are exposed as `sidestream_<name>`.
pub fn registry() -> Registry {
    Registry::with_prefix("sidestream")
}

/// The Prometheus text exposition of every metric in `registry`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::with_capacity(4096);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// Registers a new metric under `name` (without the prefix) and returns it, for the subsystem's
/// own struct to keep.
pub fn add<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}
