//! What a channel delivered here lately, to tell a repeat from a divergence: a publication at a
//! position delivered already is a repeat when it is the same publication (the same tag), and a
//! sign that the history diverged when it is another (a Redis Cluster's dead primary delivered a
//! publication it never replicated, and the promoted replica numbered its next one the same).
//!
//! Kept small: the newest [`RECENT`] tagged positions of the channel's epoch, each as its number
//! and a hash of its tag, and as many of those that a divergence replaced (the dead history's).
//! A dying primary that delivered more than [`RECENT`] publications it never replicated is told
//! of at the first of the new history's that reaches into the window: its subscribers get the gap
//! notice then, before anything newer.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::channels::Position;

/// How many positions a channel remembers, and how many replaced ones.
pub const RECENT: usize = 32;

#[derive(Default)]
pub(super) struct Seen {
    epoch: String,
    /// Delivered here: number and tag's hash.
    delivered: VecDeque<(u64, u64)>,
    /// Delivered here, then replaced by another history's publications at the same positions.
    replaced: VecDeque<(u64, u64)>,
}

fn hash(tag: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    tag.hash(&mut hasher);
    hasher.finish()
}

/// A tagged position's number and tag's hash.
fn key(position: &Position) -> Option<(u64, u64)> {
    position.tag.as_deref().map(|tag| (position.n, hash(tag)))
}

fn push(queue: &mut VecDeque<(u64, u64)>, entry: (u64, u64)) {
    if !queue.contains(&entry) {
        queue.push_back(entry);
        if queue.len() > RECENT {
            queue.pop_front();
        }
    }
}

impl Seen {
    /// Takes `position` in, delivered now. True when the history diverged at it: another
    /// publication was delivered here at the same position, and it and every one delivered after
    /// it are now the replaced history's.
    pub(super) fn delivered(&mut self, position: &Position) -> bool {
        let Some((n, tag)) = key(position) else { return false };
        if self.epoch != position.epoch {
            *self = Seen { epoch: position.epoch.clone(), ..Seen::default() };
        }
        let diverged = self.delivered.iter().any(|&(m, other)| m == n && other != tag);
        if diverged {
            let (dead, kept) = self.delivered.drain(..).partition::<Vec<_>, _>(|&(m, _)| m >= n);
            self.delivered = kept.into();
            for entry in dead {
                push(&mut self.replaced, entry);
            }
        }
        push(&mut self.delivered, (n, tag));
        diverged
    }

    /// Whether `position` is one of a history a divergence replaced here.
    pub(super) fn replaced(&self, position: &Position) -> bool {
        position.epoch == self.epoch && key(position).is_some_and(|entry| self.replaced.contains(&entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(n: u64, tag: &str) -> Position {
        Position { n, epoch: "e".into(), tag: Some(tag.into()) }
    }

    #[test]
    fn the_same_publication_again_is_a_repeat_another_at_its_position_a_divergence() {
        let mut seen = Seen::default();
        for (n, tag) in [(1, "a"), (2, "b"), (3, "c")] {
            assert!(!seen.delivered(&at(n, tag)));
        }
        assert!(!seen.delivered(&at(2, "b")), "a repeat");
        assert!(seen.delivered(&at(2, "x")), "another publication at 2");
        assert!(seen.replaced(&at(2, "b")) && seen.replaced(&at(3, "c")), "the dead history from 2 on");
        assert!(!seen.replaced(&at(1, "a")) && !seen.replaced(&at(2, "x")));
        assert!(!seen.delivered(&at(3, "y")), "3 of the new history follows");
        assert!(!seen.delivered(&Position::at(3, "e")), "untagged: not told apart");
    }

    #[test]
    fn another_epoch_starts_afresh_and_the_window_is_bounded() {
        let mut seen = Seen::default();
        for n in 1..=RECENT as u64 + 5 {
            seen.delivered(&at(n, "a"));
        }
        assert!(!seen.delivered(&at(1, "b")), "out of the window: not known");
        assert!(seen.delivered(&at(RECENT as u64 + 5, "b")));
        let other = Position { n: 6, epoch: "f".into(), tag: Some("z".into()) };
        assert!(!seen.delivered(&other));
        assert!(!seen.replaced(&at(RECENT as u64 + 5, "a")), "another epoch's");
    }
}
