//! The model a channel workload is checked against: what the README promises a room's clients.
//!
//! - Each channel's history holds every publication answered `200` exactly once, at consecutive
//!   positions of one epoch (read at the end by an auditor from position 0).
//! - Every subscriber connection (a *session*) sees messages at strictly increasing positions, each
//!   with the text the history holds there; a position skipped is allowed only after a gap notice
//!   (a gap notice is followed by nothing older); a session that came back with `last=P` starts at
//!   P+1 or with a gap notice. A message of an earlier epoch than the history's (a Redis Cluster
//!   primary replaced: the history is kept under a new epoch) has the history's text at its
//!   position, or was never answered 200; a session crosses to another epoch only after a gap
//!   notice.
//! - A message of the history's epoch with another text than the history's at its position, never
//!   answered 200, is a *ghost*: a Redis Cluster's dying primary delivered it and never replicated
//!   it, and the promoted replica numbered another publication the same (`make test` makes them
//!   on purpose). Ghosts come in order too, and whatever the history holds at or before a ghost's
//!   position comes after it only after a gap notice: what a session was given stays one history,
//!   and every publication answered 200 is delivered in order or preceded by a gap notice.
//! - A session still open at the end reaches the channel's last publication.
//! - Sessions that read promptly get no gap notice at all when no fault was injected.

use std::collections::{BTreeMap, HashMap, HashSet};

/// What a subscriber saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Message { n: u64, epoch: String, text: String },
    Gap,
}

/// One subscriber connection.
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub who: String,
    pub room: String,
    /// The position it came back with, and the text of the message it was given there.
    pub since: Option<(u64, String)>,
    pub since_text: Option<String>,
    pub events: Vec<Event>,
    /// It read slowly on purpose (gap notices are its due).
    pub slow: bool,
    /// It was open at the end and read on until the end marker.
    pub to_the_end: bool,
}

/// One published text and what its publisher was answered (`None`: no answer, or not known).
#[derive(Clone, Debug)]
pub struct Published {
    pub room: String,
    pub text: String,
    pub ok: Option<bool>,
}

/// A room's history as the auditor read it: its epoch and the text at each position.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub epoch: String,
    pub texts: BTreeMap<u64, String>,
}

/// The verdict: every violation found, and what was counted.
#[derive(Debug, Default)]
pub struct Verdict {
    pub violations: Vec<String>,
    pub sessions: usize,
    pub messages: usize,
    pub gaps: usize,
    pub prompt_gaps: usize,
    pub published_ok: usize,
    /// How many of each kind of violation (all of them, where `violations` keeps the first 1,000).
    pub kinds: BTreeMap<&'static str, usize>,
}

impl Verdict {
    fn violation(&mut self, kind: &'static str, what: String) {
        *self.kinds.entry(kind).or_default() += 1;
        if self.violations.len() < 1000 {
            self.violations.push(what);
        }
    }
}

/// Checks the histories, then every session, against what was published.
pub fn check(histories: &HashMap<String, History>, published: &[Published], sessions: &[Session]) -> Verdict {
    let mut verdict = Verdict::default();
    let mut where_is: HashMap<(&str, &str), u64> = HashMap::new();
    for (room, history) in histories {
        let mut expected = history.texts.keys().next().copied().unwrap_or(1);
        for (n, text) in &history.texts {
            if *n != expected {
                verdict.violation(
                    "history hole",
                    format!("{room}: the history skips from {} to {n}", expected - 1),
                );
            }
            expected = n + 1;
            if let Some(earlier) = where_is.insert((room.as_str(), text.as_str()), *n) {
                verdict.violation(
                    "published twice",
                    format!("{room}: {} published twice (at {earlier} and {n})", clip(text)),
                );
            }
        }
    }
    for p in published {
        if p.ok == Some(true) {
            verdict.published_ok += 1;
            if histories.contains_key(&p.room) && !where_is.contains_key(&(p.room.as_str(), p.text.as_str()))
            {
                verdict.violation(
                    "lost",
                    format!("{}: {} was answered 200 and is not in the history", p.room, clip(&p.text)),
                );
            }
        }
    }
    let answered_200: HashSet<&str> =
        published.iter().filter(|p| p.ok == Some(true)).map(|p| p.text.as_str()).collect();
    for session in sessions {
        check_session(session, histories.get(&session.room), &answered_200, &mut verdict);
    }
    verdict
}

/// Whether `text` at `n` of `epoch` is a ghost of `history`: of its epoch, not its text there,
/// never answered 200.
fn ghost(
    history: Option<&History>,
    (n, epoch, text): (u64, &str, &str),
    answered_200: &HashSet<&str>,
) -> bool {
    history.is_some_and(|h| {
        epoch == h.epoch && h.texts.get(&n).map(String::as_str) != Some(text) && !answered_200.contains(text)
    })
}

fn check_session(
    session: &Session,
    history: Option<&History>,
    answered_200: &HashSet<&str>,
    verdict: &mut Verdict,
) {
    verdict.sessions += 1;
    let who = &session.who;
    // The newest position it was given of the history, and the newest at all (a ghost's).
    let mut last = session.since.clone();
    let mut last_any = session.since.clone();
    if let (Some((n, epoch)), Some(text)) = (&session.since, &session.since_text)
        && ghost(history, (*n, epoch, text), answered_200)
    {
        last = Some((n.saturating_sub(1), epoch.clone()));
    }
    let mut told = false;
    let mut first = true;
    for event in &session.events {
        let Event::Message { n, epoch, text } = event else {
            verdict.gaps += 1;
            if !session.slow {
                verdict.prompt_gaps += 1;
            }
            told = true;
            continue;
        };
        verdict.messages += 1;
        let is_ghost = ghost(history, (*n, epoch, text), answered_200);
        if let Some(history) = history {
            // A message of an earlier epoch (a Redis Cluster primary replaced: the history
            // is kept, under a new epoch) holds the text the history has at its position,
            // unless it was never answered 200 (the dead primary delivered it unreplicated).
            let earlier = *epoch != history.epoch;
            if earlier && history.texts.get(n) != Some(text) && answered_200.contains(text.as_str()) {
                verdict.violation(
                    "epoch change",
                    format!("{who}: {} at {n} of epoch {epoch}, not in the history there", clip(text)),
                );
            }
            if !earlier && !is_ghost && history.texts.get(n) != Some(text) {
                verdict.violation(
                    "wrong text",
                    format!("{who}: at {n} {} where the history has another", clip(text)),
                );
            }
        }
        if let Some((l, e)) = &last_any
            && e == epoch
            && n <= l
            && !told
        {
            verdict.violation(
                "repeat or older",
                format!(
                    "{who}: {n} after {l} (a repeat or older, or another history's without a gap notice)"
                ),
            );
        }
        if !is_ghost {
            check_step(who, (&last, session.since.is_none() && first), (*n, epoch), told, verdict);
            last = Some((*n, epoch.clone()));
        }
        last_any = Some((*n, epoch.clone()));
        told = false;
        first = false;
    }
    if session.to_the_end
        && let Some(history) = history
    {
        let end = history.texts.keys().next_back().copied();
        let reached = matches!(&last, Some((n, e)) if Some(*n) == end && *e == history.epoch);
        if !reached && !told {
            verdict.violation(
                "short",
                format!("{who}: stopped at {last:?} before the end {end:?}, with no gap notice"),
            );
        }
    }
}

/// One message of the history after `last` (the newest of it given; `fresh`: none yet, and
/// none asked for): the next position, or after a gap notice anything newer.
fn check_step(
    who: &str,
    (last, fresh): (&Option<(u64, String)>, bool),
    (n, epoch): (u64, &String),
    told: bool,
    verdict: &mut Verdict,
) {
    if let Some((l, e)) = last
        && e == epoch
    {
        if n <= *l {
            verdict.violation("repeat or older", format!("{who}: {n} after {l} (a repeat or older)"));
        } else if n != l + 1 && !told {
            verdict.violation("hole", format!("{who}: {l} then {n}, with no gap notice between"));
        }
    } else if last.is_some() && !told && !fresh {
        verdict.violation("epoch change", format!("{who}: another epoch at {n} without a gap notice"));
    }
}

fn clip(text: &str) -> String {
    text.chars().take(24).collect()
}
