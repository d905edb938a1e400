//! The node registry: every node heartbeats into Redis, and any live node reaps the nodes that
//! went silent, so a node that dies without closing its sessions does not leave its users in
//! the rooms.
//!
//! Timing, for a node TTL `T` (`ROOKERY_NODE_TTL_MS`): nodes heartbeat every `T/5`; a node
//! silent for `3T/5` counts as dead; every node looks for dead ones at each heartbeat. So the
//! dead node's users leave their rooms within about `4T/5` of its last heartbeat, inside `T`.
//! One reaper works at a time (a lock that expires after `T`). Reaping a node removes its
//! sessions from presence (which announces the leaves and takes the node out of every room's
//! node set), deletes their records and its inboxes. A node that was reaped while alive (paused longer than that) notices at its
//! next heartbeat and writes its sessions and presence back once the reaper is done (which puts
//! it back in its rooms' node sets); its bus consumer recreates its inboxes and catches up from
//! the rooms' history, once when it finds its inboxes gone and again after the restore.

use std::{sync::Arc, time::Duration};

use redis::aio::ConnectionLike;
use tracing::Instrument;

use super::{Keys, Shared};
use crate::{domain::SessionId, engine::EngineError};

/// Sessions written per round trip while reaping.
const REAP_CHUNK: usize = 128;

/// Deletes the reaper lock only if this node still holds it.
const RELEASE_LOCK: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// The heartbeat interval for a node TTL.
pub fn heartbeat_interval(ttl_ms: u64) -> Duration {
    Duration::from_millis((ttl_ms / 5).max(1))
}

fn silent_after_ms(ttl_ms: u64) -> u64 {
    ttl_ms * 3 / 5
}

/// Heartbeats and reaps until the task is dropped.
pub async fn run(shared: Arc<Shared>) {
    let ttl_ms = shared.config.node_ttl_ms;
    let mut ticker = tokio::time::interval(heartbeat_interval(ttl_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Session records live three TTLs and are rewritten once per TTL.
    let refresh_every = 5u64;
    // The epoch at the last good heartbeat: `None` until the first.
    let mut last_epoch: Option<String> = None;
    // Set when this node finds it was reaped; cleared once its registrations are back.
    let mut restore = false;
    for beat in 0u64.. {
        ticker.tick().await;
        match shared.timed("heartbeat", heartbeat(&shared, last_epoch.as_deref())).await {
            Ok(Beat { epoch, reaped }) => {
                last_epoch = Some(epoch);
                restore |= reaped;
            }
            Err(error) => {
                tracing::warn!(%error, "heartbeat failed");
                continue;
            }
        }
        if restore {
            match restore_after_reaping(&shared).await {
                Ok(()) => restore = false,
                Err(error) => tracing::warn!(%error, "restoring this node's sessions failed; retrying"),
            }
        }
        if beat % refresh_every == 0
            && let Err(error) = refresh_sessions(&shared).await
        {
            tracing::warn!(%error, "refreshing session records failed");
        }
        if let Err(error) = shared.timed("reap", reap_silent_nodes(&shared)).await {
            tracing::warn!(%error, "reaping silent nodes failed");
        }
        if let Err(error) = shared.timed("bus_pending", record_pending(&shared)).await {
            tracing::warn!(%error, "reading the bus's pending counts failed");
        }
    }
}

/// What a heartbeat found.
struct Beat {
    epoch: String,
    /// The node was missing from the registry although Redis kept its data since the last
    /// heartbeat (same epoch): another node reaped it. (After Redis lost its data, the bus
    /// consumer restores the node's registrations instead.)
    reaped: bool,
}

/// Records this node as alive, and reads the epoch in the same round trip.
async fn heartbeat(shared: &Shared, last_epoch: Option<&str>) -> Result<Beat, EngineError> {
    let mut conn = shared.redis.clone();
    let mut pipe = redis::pipe();
    pipe.cmd("FCALL").arg("rookery_v1_heartbeat").arg(1).arg(Keys::nodes()).arg(&shared.config.node_id);
    pipe.add_command(super::epoch::get());
    let (added, epoch): (i64, Option<String>) =
        pipe.query_async(&mut conn).await.map_err(|e| super::engine_error(&e))?;
    let epoch = epoch.unwrap_or_default();
    let reaped = added == 1 && !epoch.is_empty() && last_epoch == Some(epoch.as_str());
    Ok(Beat { epoch, reaped })
}

/// Writes this node's sessions and presence back once the reaper that removed them is done.
async fn restore_after_reaping(shared: &Shared) -> Result<(), EngineError> {
    tracing::warn!(node = %shared.config.node_id, "this node was reaped while alive; restoring its sessions");
    let mut conn = shared.redis.clone();
    wait_for_reaper(&mut conn, shared.config.node_ttl_ms).await?;
    shared.restore_registrations().await?;
    // Until now this node was in no room's node set: what was published meanwhile is only in
    // the rooms' history.
    shared.catch_up_requested.store(true, std::sync::atomic::Ordering::Release);
    Ok(())
}

/// Waits (at most one TTL, when the lock expires anyway) until no reaper is at work.
async fn wait_for_reaper(conn: &mut impl ConnectionLike, ttl_ms: u64) -> Result<(), EngineError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ttl_ms);
    loop {
        let holder: Option<String> =
            redis::cmd("GET").arg(Keys::reaper()).query_async(conn).await.map_err(|e| super::engine_error(&e))?;
        if holder.is_none() || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn refresh_sessions(shared: &Shared) -> Result<(), EngineError> {
    let mut conn = shared.redis.clone();
    shared.rewrite_session_records(&mut conn).await
}

/// Reaps every node silent for too long, if this node gets the reaper lock.
async fn reap_silent_nodes(shared: &Shared) -> Result<(), EngineError> {
    let (node, ttl_ms) = (&shared.config.node_id, shared.config.node_ttl_ms);
    let mut conn = shared.redis.clone();
    let silent: Vec<String> = redis::cmd("FCALL_RO")
        .arg("rookery_v1_silent_nodes")
        .arg(1)
        .arg(Keys::nodes())
        .arg(silent_after_ms(ttl_ms))
        .query_async(&mut conn)
        .await
        .map_err(|e| super::engine_error(&e))?;
    let silent: Vec<String> = silent.into_iter().filter(|other| other != node).collect();
    if silent.is_empty() {
        return Ok(());
    }
    let locked: Option<String> = redis::cmd("SET")
        .arg(Keys::reaper())
        .arg(node)
        .arg("NX")
        .arg("PX")
        .arg(ttl_ms)
        .query_async(&mut conn)
        .await
        .map_err(|e| super::engine_error(&e))?;
    if locked.is_none() {
        return Ok(()); // another node is reaping
    }
    let mut outcome = Ok(());
    for dead in &silent {
        // Claimed only if still silent, so a node that just came back is left alone.
        let claimed: redis::RedisResult<i64> = redis::cmd("FCALL")
            .arg("rookery_v1_claim_silent")
            .arg(1)
            .arg(Keys::nodes())
            .arg(dead)
            .arg(silent_after_ms(ttl_ms))
            .query_async(&mut conn)
            .await;
        outcome = match claimed {
            Ok(1) => reap(&mut conn, shared, dead).await,
            Ok(_) => Ok(()),
            Err(error) => Err(super::engine_error(&error)),
        };
        if outcome.is_err() {
            break;
        }
    }
    let _: redis::RedisResult<i64> =
        redis::cmd("EVAL").arg(RELEASE_LOCK).arg(1).arg(Keys::reaper()).arg(node).query_async(&mut conn).await;
    outcome
}

/// Reaps a claimed node: its sessions leave their rooms, its inboxes go. Traced as `node.reap`.
async fn reap(conn: &mut impl ConnectionLike, shared: &Shared, dead: &str) -> Result<(), EngineError> {
    let span = tracing::info_span!(
        "node.reap",
        otel.status_code = tracing::field::Empty,
        rookery.node = %shared.config.node_id,
        rookery.reaped_node = dead,
        rookery.sessions = tracing::field::Empty,
    );
    let reaped = async {
        let sessions = remove_sessions(conn, shared, dead).await?;
        span.record("rookery.sessions", sessions);
        delete_inboxes(conn, shared, dead).await?;
        shared.metrics.reaped_nodes.inc();
        tracing::info!(reaped = %dead, sessions, "reaped a silent node");
        Ok(())
    }
    .instrument(span.clone())
    .await;
    if reaped.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    reaped
}

/// Takes `node`'s session index and removes each session from the rooms it was in (announcing
/// leaves where it was the user's last session, and taking `node` out of the room's node set
/// with its last session there) and deletes its record. Returns the count.
pub async fn remove_sessions(
    conn: &mut impl ConnectionLike,
    shared: &Shared,
    node: &str,
) -> Result<usize, EngineError> {
    let index: Vec<(String, String)> = redis::cmd("FCALL")
        .arg("rookery_v1_sessions_take")
        .arg(1)
        .arg(Keys::node_sessions(node))
        .query_async(conn)
        .await
        .map_err(|e| super::engine_error(&e))?;
    for chunk in index.chunks(REAP_CHUNK) {
        let mut pipe = redis::pipe();
        for (session, entry) in chunk {
            let (Ok(id), Some((user, rooms))) =
                (session.parse::<SessionId>(), super::sessions::parse_index_entry(entry))
            else {
                continue;
            };
            for room in rooms {
                pipe.add_command(shared.presence.leave_of(node, &room, &user, id)).ignore();
            }
            pipe.cmd("DEL").arg(Keys::session(node, session)).ignore();
        }
        let () = pipe.query_async(conn).await.map_err(|e| super::engine_error(&e))?;
    }
    Ok(index.len())
}

/// Sets the pending-count gauge of every shard from `XPENDING` on this node's inboxes.
async fn record_pending(shared: &Shared) -> Result<(), EngineError> {
    let mut pipe = redis::pipe();
    for inbox in shared.keys.inboxes(&shared.config.node_id) {
        pipe.cmd("XPENDING").arg(inbox).arg(&shared.config.node_id);
    }
    let mut conn = shared.redis.clone();
    let summaries: Vec<(i64, redis::Value, redis::Value, redis::Value)> =
        pipe.query_async(&mut conn).await.map_err(|e| super::engine_error(&e))?;
    for (shard, (pending, ..)) in summaries.into_iter().enumerate() {
        shared.metrics.set_bus_pending(shard as u32, pending);
    }
    Ok(())
}

/// Deletes a reaped node's inboxes (and with them its groups): its sessions have left every
/// room, so no function adds to them any more.
async fn delete_inboxes(conn: &mut impl ConnectionLike, shared: &Shared, node: &str) -> Result<(), EngineError> {
    let mut pipe = redis::pipe();
    for inbox in shared.keys.inboxes(node) {
        // One key per command: the inboxes of different shards live in different Cluster slots.
        pipe.cmd("DEL").arg(inbox).ignore();
    }
    let () = pipe.query_async(conn).await.map_err(|e| super::engine_error(&e))?;
    Ok(())
}
