//! The metrics' labels: each a set of bounded values, never raw client input.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

/// Why a WebSocket upgrade was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub reason: &'static str,
}

/// Who closed a WebSocket and with which code, bucketed by [`close_code_label`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    pub by: &'static str,
    pub code: &'static str,
}

/// The codes RFC 6455 §7.4 and the IANA registry define, each its own label value.
const REGISTERED_CLOSE_CODES: [&str; 16] = [
    "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010", "1011", "1012",
    "1013", "1014", "1015",
];

/// A close code as a label value of bounded cardinality: a client may send any of 3000-4999 (and
/// worse), and every distinct value would be a new time series. Registered codes keep their
/// number; the application ranges become `3xxx` and `4xxx`; anything else is `other`; a stream
/// that ended without a Close is `none`.
pub fn close_code_label(code: Option<u16>) -> &'static str {
    match code {
        None => "none",
        Some(code @ 1000..=1015) => REGISTERED_CLOSE_CODES[usize::from(code - 1000)],
        Some(3000..=3999) => "3xxx",
        Some(4000..=4999) => "4xxx",
        Some(_) => "other",
    }
}

/// Why an HTTP connection ended in error before a request could be answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnErrorLabels {
    pub kind: &'static str,
}

/// One HTTP request: the route family (never the raw path, to keep cardinality bounded) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    pub status: u16,
}

/// One request of a WebSocket app: what it carried and how it went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppRequestLabels {
    /// `open`, `events`, `keepalive` or `last` (the CLOSE or DISCONNECT).
    pub kind: &'static str,
    /// `ok`, `refused`, `unavailable`, `timeout`, `failed` or `bad_answer`.
    pub result: &'static str,
}

/// Something a WebSocket app sent that was ignored, or a control message it sent.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WhatLabels {
    pub what: &'static str,
}

/// A connection's last event, delivered to its component or not.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LastEventLabels {
    /// `close` or `disconnect`.
    pub event: &'static str,
    /// `delivered`, `refused` (the component answered 4xx) or `gave_up`.
    pub result: &'static str,
}

/// How a publish request went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// What a memory budget did (issue 23): where, and which of its documented actions.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum BudgetPath {
    /// A WebSocket app's connection (`--app-connection-budget`).
    App,
    /// The whole gateway (`--memory-budget`).
    Gateway,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum BudgetAction {
    /// A connection closed (1009 for an answer over its budget, 1008 when the gateway sheds it).
    Close,
    /// An upgrade refused with 503.
    Refuse,
}

impl BudgetPath {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPath::App => "app",
            BudgetPath::Gateway => "gateway",
        }
    }
}

impl BudgetAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetAction::Close => "close",
            BudgetAction::Refuse => "refuse",
        }
    }
}

// Label values are lowercase, as the README and the dashboards spell them: not the variants'
// names, which the derive would use.
impl EncodeLabelValue for BudgetPath {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        self.as_str().encode(encoder)
    }
}

impl EncodeLabelValue for BudgetAction {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        self.as_str().encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub path: BudgetPath,
    pub action: BudgetAction,
}
