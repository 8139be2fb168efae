//! A connection's mailbox: the bounded queue the hub hands its publications to, and what it holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::channels::Publication;

/// A connection's mailbox: where its publications go, and the flag its connection watches to ask
/// for the gap notices of the subscriptions that lost publications ([`Hub::tell_lost`]).
#[derive(Clone, Debug)]
pub struct Mailbox {
    pub tx: mpsc::Sender<Arc<Publication>>,
    pub lost: Arc<AtomicBool>,
    /// Bytes of the messages in it (issue 23): a publication that would take it past
    /// [`MAILBOX_BYTES`] is dropped like one that finds it full. Added by whoever puts a
    /// publication in ([`Mailbox::add`]), taken off by the connection that reads it.
    pub bytes: Arc<AtomicUsize>,
}

impl Mailbox {
    /// A mailbox of [`MAILBOX`] places and its receiving end.
    pub fn new() -> (Self, mpsc::Receiver<Arc<Publication>>) {
        let (tx, rx) = mpsc::channel(MAILBOX);
        (Mailbox { tx, lost: Arc::new(AtomicBool::new(false)), bytes: Default::default() }, rx)
    }

    /// Whether `publication` fits its byte budget: an empty mailbox takes any one.
    pub(super) fn fits(&self, publication: &Publication) -> bool {
        let held = self.bytes.load(Ordering::Relaxed);
        held == 0 || held + publication.size() <= MAILBOX_BYTES
    }

    /// Counts a publication put in.
    pub fn add(&self, publication: &Publication) {
        self.bytes.fetch_add(publication.size(), Ordering::Relaxed);
    }

    /// Takes a publication the connection read out of the count.
    pub fn taken(&self, publication: &Publication) {
        let size = publication.size();
        let _ =
            self.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(size)));
    }
}

/// Bytes of messages a mailbox holds before the hub drops more for it (and tells of the gap):
/// what a subscriber that does not read can make the gateway hold of the channel's publications,
/// beside its outbox, whatever their count.
pub const MAILBOX_BYTES: usize = 1024 * 1024;

/// How many publications wait in a mailbox before the hub drops more: enough for a burst while
/// the connection's task is scheduled, not a queue that hides a stuck one.
pub const MAILBOX: usize = 256;
