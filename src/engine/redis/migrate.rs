//! Versioned migrations, applied by every node at start.
//!
//! `migrations/` holds one Redis Function library per schema version, named after it
//! (`rookery_v1`, ...). A node loads its own version's library (`FUNCTION LOAD REPLACE`, so two
//! nodes starting at once load the same code twice, harmlessly) and raises the recorded schema
//! version to its own, never lowering it. A node that finds a newer schema than it knows refuses
//! to start. Because each version's functions have their own names, a newer library never
//! changes what an older node calls while both run during a rolling upgrade.

use redis::aio::ConnectionLike;

use super::Keys;

/// The schema this build of rookery speaks.
pub const SCHEMA_VERSION: u32 = 1;

/// The function library of [`SCHEMA_VERSION`].
const LIBRARY: &str = include_str!("../../../migrations/0001_rookery_v1.lua");

/// Raises the recorded version to ARGV[1] unless it is already higher; returns the old value.
const RAISE_VERSION: &str = "local current = tonumber(redis.call('GET', KEYS[1]) or '0') \
    if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end \
    return current";

/// Why a node could not bring Redis to its schema.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("Redis holds rookery schema v{found}, newer than v{known} of this node: upgrade the node")]
    NewerSchema { found: u32, known: u32 },
    #[error("the schema version in Redis ({0:?} at rookery:schema) is not a number")]
    BadVersion(String),
    #[error("cannot migrate Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Applies the migrations this node knows; returns the schema version Redis held before.
pub async fn migrate(conn: &mut impl ConnectionLike) -> Result<u32, MigrateError> {
    let found: Option<String> = redis::cmd("GET").arg(Keys::schema()).query_async(conn).await?;
    let found = match found {
        None => 0,
        Some(raw) => raw.parse().map_err(|_| MigrateError::BadVersion(raw))?,
    };
    if found > SCHEMA_VERSION {
        return Err(MigrateError::NewerSchema { found, known: SCHEMA_VERSION });
    }
    load_library(conn).await?;
    let before: u32 =
        redis::cmd("EVAL").arg(RAISE_VERSION).arg(1).arg(Keys::schema()).arg(SCHEMA_VERSION).query_async(conn).await?;
    if before > SCHEMA_VERSION {
        // Another node raised it between our read and our load: same refusal as above.
        return Err(MigrateError::NewerSchema { found: before, known: SCHEMA_VERSION });
    }
    Ok(found)
}

/// Loads this version's function library (on every primary of a cluster).
pub(super) async fn load_library(conn: &mut impl ConnectionLike) -> redis::RedisResult<()> {
    let _: redis::Value = redis::cmd("FUNCTION").arg("LOAD").arg("REPLACE").arg(LIBRARY).query_async(conn).await?;
    Ok(())
}

/// True when a call failed because Redis does not have the rookery functions (it ran nothing).
pub(super) fn functions_missing(error: &redis::RedisError) -> bool {
    error.to_string().contains("Function not found")
}
