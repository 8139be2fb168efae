//! `tracing` set-up: `RUST_LOG` filters (default `info`), text for people or JSON for pipelines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Log output format (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// At most `max` bytes of `text` (cut at a character boundary, marked with `…`), for log fields a
/// client or a guest chooses: one request must not be able to write a 32 KiB log line.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn clip_keeps_short_text_and_cuts_long_text_at_a_character() {
        assert_eq!(super::clip("short", 10), "short");
        assert_eq!(super::clip("abcdef", 3), "abc…");
        assert_eq!(super::clip("ééé", 3), "é…", "never inside a character");
    }
}
