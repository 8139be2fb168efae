//! Ghosts: publications delivered to a channel's subscribers that its history never holds, at the
//! position its next publication then takes. What a Redis Cluster's dying primary leaves when it
//! delivered a publication it had not replicated (its publisher was refused, `--redis-wait-replicas`)
//! and the promoted replica numbers its next publication the same; made here on purpose, on a real
//! `redis-server`, by a script that reads where the channel stands and publishes the next position
//! (with a tag of its own) without storing it.

use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;

use super::cluster::Cluster;
use super::redis::command_args_on;

const GHOST: &str = r#"
local n, epoch = redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])
if not n or not epoch then return 0 end
n = tonumber(n) + 1
local id = n .. '.' .. epoch .. '.' .. ARGV[3]
local content = '{"type":"room","from":"ghost","text":"' .. ARGV[4] .. '","id":"' .. id .. '"}'
redis.call(ARGV[1], ARGV[2], 't\n' .. id .. '\n\n' .. content)
return n
"#;

/// Publishes the ghost `text` to `channel`'s subscribers (on the Redis on `port`, with `PUBLISH`
/// or on a cluster's slot owner with `SPUBLISH`): the position it took, `None` before the
/// channel's first publication.
pub async fn ghost(port: u16, publish: &str, channel: &str, (tag, text): (&str, &str)) -> Option<u64> {
    let (n, epoch) = (format!("sidestream:{{{channel}}}:n"), format!("sidestream:{{{channel}}}:e"));
    let topic = format!("sidestream:{{{channel}}}");
    let args = ["EVAL", GHOST, "2", &n, &epoch, publish, &topic, tag, text];
    let answer = command_args_on(port, &args).await;
    answer.trim_start_matches(':').trim().parse().ok().filter(|n| *n > 0)
}

/// One ghost in the room `room` (`room:NAME`) of `cluster`'s Redis: its text, if it was made.
pub async fn haunt(cluster: &Cluster, room: &str, k: usize) -> Option<String> {
    let channel = format!("room:{room}");
    let (port, publish) = match (&cluster.redis, &cluster.shards) {
        (Some(redis), _) => (redis.port, "PUBLISH"),
        (None, Some(shards)) => (shards.owner(&channel).await, "SPUBLISH"),
        (None, None) => panic!("ghosts need Redis"),
    };
    let text = format!("ghost-{k}");
    let n = ghost(port, publish, &channel, (&format!("g{k}"), &text)).await?;
    eprintln!("ghost {k}: {room} at {n}");
    Some(text)
}

/// Ghosts in random rooms (of `rooms`) every 0.2 to 1.5 s for `length`: how many were made.
pub async fn haunt_for(cluster: &Cluster, rooms: usize, length: Duration, rng: &mut SmallRng) -> usize {
    let end = tokio::time::Instant::now() + length;
    let mut made = 0;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        let room = super::workload::room(rng.random_range(0..rooms));
        made += usize::from(haunt(cluster, &room, made + 1).await.is_some());
    }
    made
}
