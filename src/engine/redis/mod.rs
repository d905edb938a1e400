//! The Redis engine: messages, history and presence in Redis, so many nodes act as one.
//!
//! Built in steps. Here so far: the key layout (`keys`), the versioned migrations a node applies
//! at start (`migrate`), and the message store (`store`: publish, history, recover) through the
//! Redis Functions of `migrations/`. The bus consumer, presence, the node registry and reaper
//! come next, and only then does the engine implement [`super::Engine`].

mod keys;
mod migrate;
mod store;

pub use keys::Keys;
pub use migrate::{MigrateError, SCHEMA_VERSION, migrate};
pub use store::MessageStore;

use super::EngineError;

/// A Redis failure as the engine reports it: connection trouble is `Unavailable` (the caller
/// may retry; nothing happened), anything else `Internal`.
pub(crate) fn engine_error(error: &redis::RedisError) -> EngineError {
    if error.is_io_error() || error.is_connection_refusal() || error.is_timeout() || error.is_connection_dropped() {
        EngineError::Unavailable(error.to_string())
    } else {
        EngineError::Internal(error.to_string())
    }
}

/// A pool that cannot hand out a connection: Redis is unreachable or saturated.
pub(crate) fn pool_error(error: &deadpool_redis::PoolError) -> EngineError {
    EngineError::Unavailable(error.to_string())
}
