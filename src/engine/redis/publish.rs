//! A publish from this node: one `FCALL` over the publishing thread's own connection (on one
//! server; see `connection`), waited for no longer than one call may take, and this node's own
//! members served from its answer, since no inbox of this node's holds its own messages (the
//! answer carries the message's number among the room's events; see `rooms::order`).

use std::sync::Arc;

use super::{Published, Shared};
use crate::{
    domain::{Message, MessageId},
    engine::{BusEvent, EngineError, NewMessage},
};

impl Shared {
    /// Over the thread's own connection on one server, the shared one otherwise. The caller
    /// waits no longer than one call may take, opening the connection included: a session
    /// waiting on a Redis that does not answer stays able to answer its heartbeats. Out of time
    /// before the connection was open, nothing was sent (`unavailable`); after, it may have been.
    pub(super) async fn publish(&self, message: NewMessage) -> Result<MessageId, EngineError> {
        // Before the call's time starts: the wait is bounded by the pacing's interval, and the
        // call's time and its metric stay Redis's.
        self.pacing.turn().await;
        let within = self.redis.longest_call();
        let deadline = tokio::time::Instant::now() + within;
        let published = async {
            let conn = match &self.thread_connections {
                // Nothing was sent when the connection cannot be opened, whatever the reason.
                Some(connections) => match tokio::time::timeout_at(deadline, connections.get()).await {
                    Ok(opened) => opened.map_err(|e| EngineError::Unavailable(e.to_string()))?,
                    Err(_) => {
                        return Err(EngineError::Unavailable(format!("no connection to Redis within {within:?}")));
                    }
                },
                None => self.redis.clone(),
            };
            tokio::time::timeout_at(deadline, self.store.publish_over(conn, &message))
                .await
                .unwrap_or_else(|_| Err(EngineError::NoAnswer(format!("no answer within {within:?}"))))
        };
        match self.timed("publish", published).await {
            Ok(Published { id, seq, not_replicated }) => {
                if let Some(seq) = seq {
                    // No inbox of this node's holds the message: its members get it from here.
                    let NewMessage { room, user, body, trace, .. } = message;
                    let stored = Message { room, id, user, body, trace };
                    self.delivery.deliver_numbered(seq, BusEvent::Message(Arc::new(stored)));
                }
                match not_replicated {
                    Some(why) => Err(EngineError::NotReplicated(why)),
                    None => Ok(id),
                }
            }
            Err(error) => {
                if !matches!(error, EngineError::Unavailable(_)) {
                    // It may have been stored, and then only a catch-up brings it to this
                    // node's members.
                    self.delivery.check_soon(&message.room);
                }
                Err(error)
            }
        }
    }
}
