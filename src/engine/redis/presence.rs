//! Presence in Redis: per room, users with their session counts, changed atomically by the
//! schema's functions, which also put join and leave events on the room's bus shard.

use deadpool_redis::Pool;

use super::{Keys, connection, engine_error};
use crate::{
    domain::{Member, RoomName, SessionId, UserName},
    engine::EngineError,
};

/// Reads and changes who is in which room.
pub struct RedisPresence {
    pool: Pool,
    keys: Keys,
}

impl RedisPresence {
    pub fn new(pool: Pool, keys: Keys) -> Self {
        Self { pool, keys }
    }

    async fn call<T: redis::FromRedisValue>(&self, function: &str, room: &RoomName, user: &UserName, session: SessionId) -> Result<T, EngineError> {
        let mut conn = connection(&self.pool).await?;
        redis::cmd("FCALL")
            .arg(function)
            .arg(3)
            .arg(self.keys.presence(room))
            .arg(self.keys.members(room))
            .arg(self.keys.bus(self.keys.shard(room)))
            .arg(room.as_str())
            .arg(user.as_str())
            .arg(session.to_string())
            .query_async(&mut conn)
            .await
            .map_err(|e| engine_error(&e))
    }

    pub async fn join(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<Vec<Member>, EngineError> {
        let flat: Vec<(String, u32)> = self.call("rookery_v1_join", room, user, session).await?;
        members(flat)
    }

    pub async fn leave(&self, room: &RoomName, user: &UserName, session: SessionId) -> Result<(), EngineError> {
        let _: i64 = self.call("rookery_v1_leave", room, user, session).await?;
        Ok(())
    }

    pub async fn members(&self, room: &RoomName) -> Result<Vec<Member>, EngineError> {
        let mut conn = connection(&self.pool).await?;
        let flat: Vec<(String, u32)> = redis::cmd("HGETALL")
            .arg(self.keys.presence(room))
            .query_async(&mut conn)
            .await
            .map_err(|e| engine_error(&e))?;
        members(flat)
    }
}

fn members(flat: Vec<(String, u32)>) -> Result<Vec<Member>, EngineError> {
    let mut members = flat
        .into_iter()
        .map(|(user, sessions)| {
            let user = UserName::parse(&user).map_err(|_| EngineError::Internal(format!("bad user {user:?} in presence")))?;
            Ok(Member { user, sessions })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    members.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(members)
}
