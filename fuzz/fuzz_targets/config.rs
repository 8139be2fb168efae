//! The gateway's configuration parsing (`sidestream_gateway::config::Config`: clap, the value
//! parsers for addresses, durations, URLs and origins, and `Config::validate`).
//!
//! The input is structured (`arbitrary`): a list of arguments, each a flag of the real command
//! (`--name`, `--name=value`) or a value shaped like what the flags take (durations with every unit,
//! integers up to `u64::MAX`, addresses, URLs, origins, free text), so the fuzzer spends its time in
//! the value parsers and in `validate`, not in discovering flag names. Besides not panicking: a
//! configuration that validates yields connection settings, its push range is ordered, its timeouts
//! are non-zero, every allowed origin parses, and every duration that a connection adds to a clock
//! reading (`now + duration`, which panics on overflow) can be added to one.
#![no_main]

use std::sync::LazyLock;

use clap::{CommandFactory, Parser};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sidestream_gateway::config::Config;
use sidestream_gateway::server::settings;
use sidestream_gateway::ws::handshake::parse_origin;

/// Every long flag of the real command, read from clap so new flags are fuzzed without edits here.
static FLAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    Config::command().get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")).collect()
});

const UNITS: [&str; 12] = ["ns", "us", "ms", "s", "m", "h", "d", "w", "M", "y", "sec", "min"];
const SCHEMES: [&str; 6] = ["http", "https", "ws", "wss", "ftp", "HTTP"];

#[derive(Arbitrary, Debug)]
enum Arg {
    Flag(u8),
    FlagEquals(u8, Value),
    Value(Value),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Text(String),
    Int(u64),
    Signed(i64),
    Duration(u64, u8),
    TwoPartDuration(u32, u8, u32, u8),
    V4([u8; 4], u16),
    V6([u16; 8], u16),
    Url(u8, String, Option<u16>, String),
}

impl Value {
    fn render(&self) -> String {
        let unit = |u: &u8| UNITS[usize::from(*u) % UNITS.len()];
        match self {
            Value::Text(s) => s.clone(),
            Value::Int(n) => n.to_string(),
            Value::Signed(n) => n.to_string(),
            Value::Duration(n, u) => format!("{n}{}", unit(u)),
            Value::TwoPartDuration(a, u, b, v) => format!("{a}{} {b}{}", unit(u), unit(v)),
            Value::V4(ip, port) => format!("{}:{port}", std::net::Ipv4Addr::from(*ip)),
            Value::V6(ip, port) => format!("[{}]:{port}", std::net::Ipv6Addr::from(*ip)),
            Value::Url(scheme, host, port, rest) => {
                let scheme = SCHEMES[usize::from(*scheme) % SCHEMES.len()];
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("{scheme}://{host}{port}{rest}")
            }
        }
    }
}

fn flag(i: &u8) -> &'static str {
    &FLAGS[usize::from(*i) % FLAGS.len()]
}

fuzz_target!(|args: Vec<Arg>| {
    let argv = args.iter().map(|a| match a {
        Arg::Flag(i) => flag(i).to_owned(),
        Arg::FlagEquals(i, v) => format!("{}={}", flag(i), v.render()),
        Arg::Value(v) => v.render(),
    });
    let Ok(config) = Config::try_parse_from(std::iter::once("sidestream-gateway".to_owned()).chain(argv))
    else {
        return;
    };
    if config.validate().is_err() {
        return;
    }
    assert!(config.push_min <= config.push_max);
    assert!(!config.ping_interval.is_zero() && !config.idle_timeout.is_zero());
    assert!(config.max_message_size >= 125 && config.max_connections >= 1);
    assert!(config.allowed_origins.iter().all(|o| o == "*" || parse_origin(o).is_some()));
    let budget = std::sync::Arc::new(settings::budget(&config, Default::default()));
    let settings = settings::ws(&config, budget);
    assert_eq!(settings.push.is_some(), config.pushes_enabled());
    let now = std::time::Instant::now();
    for (flag, value) in [
        ("--ping-interval", config.ping_interval),
        ("--idle-timeout", config.idle_timeout),
        ("--push-max", config.push_max),
        ("--header-read-timeout", config.header_read_timeout),
    ] {
        assert!(now.checked_add(value).is_some(), "{flag} {value:?} validated but overflows a clock reading");
    }
});
