//! A subscription's start: from where the client was (its `since`) or from where the channel
//! stands as it joins, through the channel's history, to the live publications.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tracing::warn;

use super::hub::{Hub, Mailbox};
use super::{AnyBroker, Broker, History, Position, Publication};

/// Starts connection `conn`'s subscription to `channel`, which [`Hub::join`] has added (holding
/// its live publications back). Without `since` it starts where the channel stands now, looked up
/// first (`started` fires then: what its app says next may go to the client). Then it waits until
/// the broker delivers the channel's publications to this gateway, reads what the history holds
/// after its start, delivers that into the mailbox (waiting for room there), and lets the live
/// publications held back meanwhile follow. A start the history does not reach (or a position
/// that is not one, or a subscription the broker did not confirm in time) gets the
/// subscription's gap message instead, and then only what comes after where the channel stands.
pub async fn start(
    broker: &AnyBroker,
    hub: &Hub,
    (mailbox, conn): (Mailbox, u64),
    channel: String,
    since: Option<String>,
    gap: Message,
    started: oneshot::Sender<()>,
) {
    let from = match since {
        Some(since) => since.parse::<Position>().map(Some).map_err(|()| "not a position".to_owned()),
        None => broker.position(&channel).await.map_err(|e| e.to_string()),
    };
    let _ = started.send(());
    // Every subscriber waits for the subscription: what is published after it has been
    // confirmed arrives live, what came before is in the history read next. Without it, what is
    // published between the two could be missed: the client is told of a gap instead.
    let subscribed = broker.subscribe(&channel).await.map_err(|error| {
        warn!(conn, %error, "the broker did not take a subscription; it is retried when the broker is back");
        error.to_string()
    });
    let history = match (&from, subscribed) {
        (Ok(from), Ok(())) => broker.history(&channel, from.as_ref()).await.map_err(|e| e.to_string()),
        (Err(why), _) => Err(why.clone()),
        (_, Err(why)) => Err(why),
    };
    let delivered = match history {
        Ok(History::Since(missed)) => {
            let mut delivered = from.ok().flatten();
            for publication in missed {
                delivered = publication.position.clone();
                mailbox.add(&publication);
                if mailbox.tx.send(publication).await.is_err() {
                    return;
                }
            }
            delivered
        }
        Ok(History::Gap) | Err(_) => {
            let notice = Arc::new(Publication::notice(&channel, gap));
            mailbox.add(&notice);
            if mailbox.tx.send(notice).await.is_err() {
                return;
            }
            // After the notice, nothing older than where the channel stands.
            broker.position(&channel).await.unwrap_or(None)
        }
    };
    hub.recovered(&channel, conn, delivered);
}
