//! Running behind Redis Sentinel: the node asks the Sentinels which server is the primary of
//! `ROOKERY_REDIS_SENTINEL_MASTER`, and asks again when the primary stops answering, or answers
//! as a replica (`READONLY`: it was demoted), so after a failover its calls go to the promoted
//! replica. The bus consumer asks afresh on every (re)connect.
//!
//! The username and password of the first Sentinel URL are used for the Sentinels and for the
//! primary; `rediss://` Sentinel URLs make the connection to the primary TLS too.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use redis::{
    Client, ConnectionAddr, IntoConnectionInfo, RedisResult, TlsMode,
    aio::ConnectionManager,
    sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType},
};

/// The Sentinels are asked at most this often while calls keep failing.
const ASK_AT_MOST_EVERY: Duration = Duration::from_millis(100);

/// The current primary, and how to find the next one.
pub struct Primary {
    sentinels: tokio::sync::Mutex<Asked>,
    /// The primary's address and the shared connection to it.
    current: RwLock<(String, ConnectionManager)>,
}

struct Asked {
    client: SentinelClient,
    at: Option<Instant>,
}

impl Primary {
    /// Asks the Sentinels for the primary of `master` and connects to it.
    pub async fn connect(sentinels: &[String], master: &str) -> RedisResult<Arc<Self>> {
        let mut client = sentinel_client(sentinels, master)?;
        let primary = client.async_get_client().await?;
        let address = primary.get_connection_info().addr().to_string();
        let manager = super::connection::manager(primary).await?;
        Ok(Arc::new(Self {
            sentinels: tokio::sync::Mutex::new(Asked { client, at: Some(Instant::now()) }),
            current: RwLock::new((address, manager)),
        }))
    }

    /// The shared connection to the primary as last known.
    pub fn current(&self) -> ConnectionManager {
        self.current.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// A client for the primary, asked of the Sentinels now (for the bus's own connection).
    pub async fn client(&self) -> RedisResult<Client> {
        let mut asked = self.sentinels.lock().await;
        asked.at = Some(Instant::now());
        asked.client.async_get_client().await
    }

    /// Asks the Sentinels again (unless someone just did) and, when they name another primary,
    /// connects to it. Returns whether the primary changed.
    pub async fn follow(&self) -> RedisResult<bool> {
        let mut asked = self.sentinels.lock().await;
        if asked.at.is_some_and(|at| at.elapsed() < ASK_AT_MOST_EVERY) {
            return Ok(false);
        }
        asked.at = Some(Instant::now());
        let primary = asked.client.async_get_client().await?;
        let address = primary.get_connection_info().addr().to_string();
        if self.current.read().unwrap_or_else(|p| p.into_inner()).0 == address {
            return Ok(false);
        }
        let manager = super::connection::manager(primary).await?;
        tracing::warn!(primary = %address, "Redis Sentinel names a new primary; following it");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (address, manager);
        Ok(true)
    }
}

/// A Sentinel client for `master`, with the first Sentinel URL's credentials and TLS for the
/// primary too.
fn sentinel_client(sentinels: &[String], master: &str) -> RedisResult<SentinelClient> {
    let first = sentinels
        .first()
        .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no Sentinel URL")))?
        .as_str()
        .into_connection_info()?;
    let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(first.redis_settings().clone());
    if matches!(first.addr(), ConnectionAddr::TcpTls { .. }) {
        node = node.set_tls_mode(TlsMode::Secure);
    }
    let urls: Vec<&str> = sentinels.iter().map(String::as_str).collect();
    SentinelClient::build(urls, master, Some(node), SentinelServerType::Master)
}
