//! Catching up: what the bus consumer does when a node may have missed events, or a room's
//! events waited too long for a number that did not come. It reads the rooms' history after the
//! newest message each delivered, delivers what is there, and reports a `gap` for what the
//! history no longer holds (see the consumer's doc for when).

use std::sync::{Arc, atomic::Ordering};

use tracing::Instrument;

use super::{BusConsumer, from_engine};
use crate::{
    domain::now_ms,
    engine::{BusEvent, CatchUpFrom},
};

impl BusConsumer {
    /// Restores registrations and catches up when a reconnect asked for it or a shard has not
    /// been drained for half the bus retention (its oldest unread entries may be trimmed before
    /// this node reads them). Runs before a read is handled, so nothing read later can move a
    /// room's position past entries the bus lost. Flags stay set until the work succeeds.
    pub(super) async fn catch_up_if_needed(&mut self) -> redis::RedisResult<()> {
        let started = now_ms();
        let oldest_drain = self.drained_at.iter().copied().min().unwrap_or(started);
        if started.saturating_sub(oldest_drain) > self.shared.config.bus_retention_ms / 2 {
            tracing::warn!("the bus was not drained for half its retention; catching up from history");
            self.pending_work.catch_up = true;
        }
        if self.shared.catch_up_requested.swap(false, Ordering::AcqRel) {
            self.pending_work.catch_up = true;
        }
        if self.pending_work.restore {
            self.shared.restore_registrations().await.map_err(from_engine)?;
            self.pending_work.restore = false;
        }
        if self.pending_work.catch_up {
            self.catch_up(self.shared.delivery.catch_up_positions()).await?;
            self.pending_work.catch_up = false;
            self.drained_at.fill(started);
        }
        Ok(())
    }

    /// Delivers, for each room, what its history holds after its position, preceded by a gap
    /// when the history no longer holds everything after it (trimmed, or lost in a failover).
    async fn catch_up(&self, positions: Vec<CatchUpFrom>) -> redis::RedisResult<()> {
        let span = tracing::info_span!("bus.catch_up", rookery.node = %self.shared.config.node_id, rookery.rooms = positions.len());
        self.catch_up_rooms(positions).instrument(span).await
    }

    async fn catch_up_rooms(&self, positions: Vec<CatchUpFrom>) -> redis::RedisResult<()> {
        for position in positions {
            let (room, after) = (&position.room, position.after);
            let recovery = self
                .shared
                .timed("recover", self.shared.store.recover(room, Some(after)))
                .await
                .map_err(from_engine)?;
            if !position.is_whole(&recovery) {
                self.shared.delivery.deliver(BusEvent::Gap { room: room.clone(), after: Some(after) });
            }
            for message in recovery.messages {
                self.shared.delivery.deliver(BusEvent::Message(Arc::new(message)));
            }
            if let Some(seq) = recovery.seq {
                self.shared.delivery.caught_up(room, seq);
            }
        }
        Ok(())
    }

    /// Catches up the rooms whose events waited too long for a lower number, or that too many
    /// wait in (see `rooms::order`). Runs when the last reads drained every inbox: a number
    /// still missing then is in no inbox, but in a publish's answer that is late or was lost,
    /// and an answer comes within one call's time or never. A room whose catch-up fails is
    /// asked for again.
    pub(super) async fn resolve_overdue(&self) -> redis::RedisResult<()> {
        let stall = 2 * self.shared.redis.longest_call();
        let Some(before) = std::time::Instant::now().checked_sub(stall) else { return Ok(()) };
        let mut overdue = self.shared.delivery.overdue(before).into_iter();
        while let Some(position) = overdue.next() {
            let room = position.room.clone();
            if let Err(error) = self.catch_up(vec![position]).await {
                self.shared.delivery.check_soon(&room);
                overdue.for_each(|position| self.shared.delivery.check_soon(&position.room));
                return Err(error);
            }
            self.shared.metrics.bus_event("overdue");
        }
        Ok(())
    }
}
