//! One subscriber of a channel here, and what it is given: in order, nothing twice, and after a
//! loss its gap notice before anything newer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_tungstenite::tungstenite::Message;

use super::seen::Seen;
use super::{HELD, Mailbox, newer};
use crate::channels::metrics::Metrics;
use crate::channels::{Position, Publication};

pub(super) struct Subscriber {
    pub(super) mailbox: Mailbox,
    /// What it is told when the channel's history cannot cover what it missed.
    pub(super) gap: Message,
    /// While recovering: live publications held back.
    pub(super) held: Option<Vec<Arc<Publication>>>,
    /// The newest position it was given: nothing at or before it is given again (unless the
    /// history diverged there: then after its gap notice).
    pub(super) last: Option<Position>,
    /// It lost publications and has not been told yet: nothing goes to it before its gap notice.
    pub(super) lost: bool,
}

impl Subscriber {
    pub(super) fn new(mailbox: Mailbox, gap: Message) -> Self {
        Subscriber { mailbox, gap, held: Some(Vec::new()), last: None, lost: false }
    }

    /// Gives it `publication` (or holds it back while it starts). `seen` is what its channel
    /// delivered here lately: a publication at a position it was given already is a repeat,
    /// unless what it was given there (or after) belongs to a history that diverged since.
    pub(super) fn give(&mut self, publication: &Arc<Publication>, seen: &Seen, metrics: &Metrics) {
        if let Some(held) = &mut self.held {
            if self.lost {
                metrics.publications_dropped.inc();
            } else if held.len() < HELD {
                held.push(publication.clone());
            } else {
                metrics.publications_dropped.inc_by(held.len() as u64 + 1);
                held.clear();
                self.lost = true;
            }
            return;
        }
        if let Some(position) = &publication.position {
            let diverged = self
                .last
                .as_ref()
                .is_some_and(|last| last.diverges(position) || (position.n < last.n && seen.replaced(last)));
            if !diverged && !newer(position, self.last.as_ref()) {
                return;
            }
            if diverged || self.last.as_ref().is_some_and(|last| last.epoch != position.epoch) {
                // Another history (Redis lost its data, or a promoted replica lacked the last
                // publications, or numbered its own where its dead primary had delivered others):
                // what came between the two is unknown, so the gap notice first.
                self.lost = true;
            }
            self.last = Some(position.clone());
        }
        if self.lost && !self.tell(&publication.channel) {
            metrics.publications_dropped.inc();
            return;
        }
        if !self.mailbox.fits(publication) || self.mailbox.tx.try_send(publication.clone()).is_err() {
            metrics.publications_dropped.inc();
            self.lose();
            return;
        }
        self.mailbox.add(publication);
    }

    /// Marks it as lost: its connection asks for its gap notice once it has room.
    pub(super) fn lose(&mut self) {
        self.lost = true;
        self.mailbox.lost.store(true, Ordering::Release);
    }

    /// Puts its gap notice in its mailbox, if there is room: true when it did.
    pub(super) fn tell(&mut self, channel: &str) -> bool {
        let notice = Arc::new(Publication::notice(channel, self.gap.clone()));
        self.mailbox.add(&notice);
        if self.mailbox.tx.try_send(notice.clone()).is_err() {
            self.mailbox.taken(&notice);
            self.mailbox.lost.store(true, Ordering::Release);
            return false;
        }
        self.lost = false;
        true
    }
}
