//! The built-in app on `/ws`: every message echoed back unchanged, and random-timed pushes.

use std::task::{Context, Poll};
use std::time::SystemTime;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::handler::{End, Flow, Handler};
use super::outbox::{Kind, Out};
use super::push::Schedule;

/// One `/ws` connection's app state: its push schedule, when pushes are on.
pub struct Builtin {
    pushes: Option<(Schedule, Instant)>,
}

impl Builtin {
    pub fn new(schedule: Option<Schedule>) -> Self {
        let pushes = schedule.map(|mut schedule| {
            let due = Instant::now() + schedule.next_delay();
            (schedule, due)
        });
        Builtin { pushes }
    }
}

impl Handler for Builtin {
    type Ready = std::convert::Infallible;

    fn deadline(&self) -> Option<Instant> {
        self.pushes.as_ref().map(|(_, due)| *due)
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Out<'_>) -> Flow {
        if let Some((schedule, due)) = &mut self.pushes
            && *due <= now
        {
            // Stamp the time the push was scheduled for, so a client measuring lateness against
            // `ts` sees timer lag as well as the network.
            let text = schedule.next_message(SystemTime::now() - (now - *due));
            if !out.offer(Message::text(text), Kind::Push) {
                out.metrics().pushes_dropped.inc();
            }
            // The next delay counts from this push, so two pushes are never closer than
            // --push-min, however late this one was.
            *due = now + schedule.next_delay();
        }
        Flow::Continue
    }

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Self::Ready> {
        Poll::Pending
    }

    fn on_ready(&mut self, never: Self::Ready, _: &mut Out<'_>) -> Flow {
        match never {}
    }

    fn takes_messages(&self, _queued: usize) -> bool {
        true
    }

    fn on_flushed(&mut self, _: &mut Out<'_>) {}

    fn on_message(&mut self, message: Message, out: &mut Out<'_>) -> Flow {
        out.send(message, Kind::Echo);
        Flow::Continue
    }

    fn on_end(self, _: End) {}
}
