//! Typed settings from `ROOKERY_*` environment variables, with defaults that make a bare
//! `cargo run` work. A bad value stops the node at start with an error that names the variable
//! and what it accepts. `variables` lists every variable with its default: the node's defaults,
//! `rookery --help` and the README's configuration table all come from it.

mod variables;

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;

pub use variables::{VARIABLES, Variable, VariableDefault, help_text, markdown_table};

use crate::{engine::redis::RedisTarget, protocol::Limits, telemetry::LogFormat};

/// Bus streams by default. One Redis gains nothing from more, and every shard adds to the cost
/// of each blocking bus read (`BENCHMARKS.md`, change 9); the hash tags that spread rooms over
/// shards are there for deployments that need them.
pub const DEFAULT_BUS_SHARDS: u32 = 1;

/// Bus streams by default on a Redis Cluster: each shard's keys live in one slot, so the shards
/// are what spreads rooms over the primaries. The tags of 16 shards fall 6/4/6 on the slot
/// ranges of three primaries, and on every primary of up to eight (`docs/cluster.md`).
pub const DEFAULT_CLUSTER_BUS_SHARDS: u32 = 16;

/// A variable held a value the node cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is invalid: expected {accepts}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub value: String,
    pub accepts: String,
}

/// How `GET /ws` identifies users.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// The user names themself with `?user=`, else gets `anon-<8 hex>`.
    Anonymous,
    /// A JWT is required; exactly one of the two key sources is set.
    Jwt { secret: Option<SecretString>, public_key_file: Option<PathBuf>, leeway_secs: u64 },
}

/// Everything a node is configured with. Its `Debug` shows no secret: the API key, the JWT
/// secret and the Redis URL (which may carry a password) print as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub node_id: String,
    pub workers: usize,
    pub heartbeat: Duration,
    pub outbound_queue_frames: usize,
    pub outbound_queue_bytes: usize,
    /// What all sessions' outbound queues may hold together; over it the largest are closed.
    pub outbound_budget_bytes: usize,
    pub max_frame_bytes: usize,
    pub max_body_bytes: usize,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    pub max_rooms_per_session: usize,
    pub history_len: usize,
    /// Rooms with more users have no presence events and list no members on join.
    pub presence_max_users: u64,
    pub max_connections: usize,
    /// HTTP connections that have not finished their request; past it the oldest is closed.
    pub max_pending_requests: usize,
    /// Time a connection has for each request's head and body.
    pub request_timeout: Duration,
    pub auth: AuthSettings,
    pub allowed_origins: Option<Vec<String>>,
    pub api_key: Option<SecretString>,
    pub echo_endpoint: bool,
    pub log_format: LogFormat,
    /// Set: the Redis engine (a cluster); unset: the in-memory engine (one node).
    /// The Redis engine's Redis (one server or a cluster); `None` runs the in-memory engine.
    pub redis: Option<RedisTarget>,
    /// Replicas that must have a message before it is acked (`WAIT`); 0: the primary's word.
    pub redis_min_replicas: u32,
    pub bus_shards: u32,
    pub bus_retention_ms: u64,
    pub bus_read_count: usize,
    /// While busy, bus reads start at most this often (0: as soon as the last one returned).
    pub bus_read_interval: Duration,
    /// On one Redis server, while busy, a worker thread's publishes go at most this often, together.
    pub publish_interval: Duration,
    pub node_ttl_ms: u64,
    pub ready_max_lag_ms: u64,
    pub drain_delay_ms: u64,
    pub drain_rate: u32,
    pub shutdown_grace_ms: u64,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads settings from a map of variables (the environment, or a test's own).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let env = Env(vars);
        let auth = match env.get_or_default("ROOKERY_AUTH") {
            "anonymous" => AuthSettings::Anonymous,
            "jwt" => {
                let secret = env.get("ROOKERY_JWT_SECRET").map(SecretString::from);
                let public_key_file = env.get("ROOKERY_JWT_PUBLIC_KEY_FILE").map(PathBuf::from);
                if secret.is_some() == public_key_file.is_some() {
                    return Err(SettingsError {
                        variable: "ROOKERY_AUTH",
                        value: "jwt".into(),
                        accepts: "exactly one of ROOKERY_JWT_SECRET (HS256) or \
                                  ROOKERY_JWT_PUBLIC_KEY_FILE (RS256/ES256 PEM) to be set"
                            .into(),
                    });
                }
                let leeway_secs = env.number("ROOKERY_JWT_LEEWAY_SECS", 0..=3600)?;
                AuthSettings::Jwt { secret, public_key_file, leeway_secs }
            }
            other => return Err(env.invalid("ROOKERY_AUTH", other, "`anonymous` or `jwt`")),
        };
        let log_format = match env.get("ROOKERY_LOG_FORMAT") {
            None => default_log_format(),
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => return Err(env.invalid("ROOKERY_LOG_FORMAT", other, "`json` or `pretty`")),
        };
        let redis = redis_target(&env)?;
        let bind = env.get_or_default("ROOKERY_BIND");
        Ok(Self {
            bind: bind.parse().map_err(|_| env.invalid("ROOKERY_BIND", bind, "host:port, e.g. 0.0.0.0:8080"))?,
            node_id: match env.get("ROOKERY_NODE_ID") {
                Some(id) if valid_node_id(id) => id.to_owned(),
                Some(id) => return Err(env.invalid("ROOKERY_NODE_ID", id, "1-64 of [A-Za-z0-9_.:-]")),
                None => default_node_id(),
            },
            workers: env.number_or("ROOKERY_WORKERS", default_workers(), 1..=1024)?,
            heartbeat: Duration::from_millis(env.number("ROOKERY_HEARTBEAT_MS", 10..=3_600_000)?),
            outbound_queue_frames: env.number("ROOKERY_OUTBOUND_QUEUE_FRAMES", 1..=1 << 20)?,
            outbound_queue_bytes: env.number("ROOKERY_OUTBOUND_QUEUE_BYTES", 1024..=1 << 30)?,
            outbound_budget_bytes: env.number("ROOKERY_OUTBOUND_BUDGET_BYTES", 1 << 20..=1 << 40)?,
            max_frame_bytes: env.number("ROOKERY_MAX_FRAME_BYTES", 256..=16 << 20)?,
            max_body_bytes: env.number("ROOKERY_MAX_BODY_BYTES", 1..=16 << 20)?,
            rate_per_sec: env.number("ROOKERY_RATE_PER_SEC", 1..=1_000_000)?,
            rate_burst: env.number("ROOKERY_RATE_BURST", 1..=1_000_000)?,
            max_rooms_per_session: env.number("ROOKERY_MAX_ROOMS_PER_SESSION", 1..=100_000)?,
            history_len: env.number("ROOKERY_HISTORY_LEN", 1..=1_000_000)?,
            presence_max_users: env.number("ROOKERY_PRESENCE_MAX_USERS", 0..=1_000_000)?,
            max_connections: env.number("ROOKERY_MAX_CONNECTIONS", 1..=10_000_000)?,
            max_pending_requests: env.number("ROOKERY_MAX_PENDING_REQUESTS", 1..=1_000_000)?,
            request_timeout: Duration::from_millis(env.number("ROOKERY_REQUEST_TIMEOUT_MS", 100..=600_000)?),
            auth,
            allowed_origins: env.get("ROOKERY_ALLOWED_ORIGINS").map(|list| {
                list.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                    .filter(|o| !o.is_empty())
                    .collect()
            }),
            api_key: env.get("ROOKERY_API_KEY").map(SecretString::from),
            echo_endpoint: env.flag("ROOKERY_ECHO_ENDPOINT")?,
            log_format,
            bus_shards: env.number_or(
                "ROOKERY_BUS_SHARDS",
                if matches!(redis, Some(RedisTarget::Cluster(_))) {
                    DEFAULT_CLUSTER_BUS_SHARDS
                } else {
                    DEFAULT_BUS_SHARDS
                },
                1..=1024,
            )?,
            redis,
            redis_min_replicas: env.number("ROOKERY_REDIS_MIN_REPLICAS", 0..=16)?,
            bus_retention_ms: env.number("ROOKERY_BUS_RETENTION_MS", 1_000..=604_800_000)?,
            bus_read_count: env.number("ROOKERY_BUS_READ_COUNT", 1..=100_000)?,
            bus_read_interval: Duration::from_millis(env.number("ROOKERY_BUS_READ_INTERVAL_MS", 0..=1000)?),
            publish_interval: Duration::from_millis(env.number("ROOKERY_PUBLISH_INTERVAL_MS", 0..=100)?),
            node_ttl_ms: env.number("ROOKERY_NODE_TTL_MS", 1_000..=3_600_000)?,
            ready_max_lag_ms: env.number("ROOKERY_READY_MAX_LAG_MS", 100..=3_600_000)?,
            drain_delay_ms: env.number("ROOKERY_DRAIN_DELAY_MS", 0..=600_000)?,
            drain_rate: env.number("ROOKERY_DRAIN_RATE", 1..=1_000_000)?,
            shutdown_grace_ms: env.number("ROOKERY_SHUTDOWN_GRACE_MS", 1_000..=3_600_000)?,
        })
    }

    /// The limits announced to each session in `welcome`.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            max_body_bytes: self.max_body_bytes,
            rate_per_sec: self.rate_per_sec,
            burst: self.rate_burst,
            max_rooms: self.max_rooms_per_session,
        }
    }
}

/// The Redis to run on: one server (`ROOKERY_REDIS_URL`), a cluster
/// (`ROOKERY_REDIS_CLUSTER_NODES`), or the primary Sentinel names (`ROOKERY_REDIS_SENTINELS` with
/// `ROOKERY_REDIS_SENTINEL_MASTER`); one of them at most. URLs are not echoed: they may hold a
/// password.
fn redis_target(env: &Env) -> Result<Option<RedisTarget>, SettingsError> {
    let url = env.get("ROOKERY_REDIS_URL");
    let cluster = env.get("ROOKERY_REDIS_CLUSTER_NODES");
    let sentinels = env.get("ROOKERY_REDIS_SENTINELS");
    let master = env.get("ROOKERY_REDIS_SENTINEL_MASTER");
    let given = [url, cluster, sentinels].iter().filter(|v| v.is_some()).count();
    if given > 1 {
        let both = if sentinels.is_some() { "ROOKERY_REDIS_SENTINELS" } else { "ROOKERY_REDIS_CLUSTER_NODES" };
        return Err(env.invalid(
            both,
            "[REDACTED]",
            "one of ROOKERY_REDIS_URL (one Redis), ROOKERY_REDIS_CLUSTER_NODES (a Redis Cluster) and \
             ROOKERY_REDIS_SENTINELS (Redis Sentinel), not several",
        ));
    }
    if master.is_some() != sentinels.is_some() {
        let (variable, value) = match master {
            Some(name) => ("ROOKERY_REDIS_SENTINEL_MASTER", name),
            None => ("ROOKERY_REDIS_SENTINELS", "[REDACTED]"),
        };
        return Err(env.invalid(variable, value, "ROOKERY_REDIS_SENTINELS and ROOKERY_REDIS_SENTINEL_MASTER together"));
    }
    if let Some(url) = url {
        return match is_redis_url(url) {
            true => Ok(Some(RedisTarget::Server(url.into()))),
            false => Err(env.invalid("ROOKERY_REDIS_URL", "[REDACTED]", "a redis:// or rediss:// URL")),
        };
    }
    if let Some(list) = cluster {
        return Ok(Some(RedisTarget::Cluster(url_list(env, "ROOKERY_REDIS_CLUSTER_NODES", list, "cluster nodes")?)));
    }
    match (sentinels, master) {
        (Some(list), Some(master)) => Ok(Some(RedisTarget::Sentinel {
            sentinels: url_list(env, "ROOKERY_REDIS_SENTINELS", list, "Sentinels")?,
            master: master.to_owned(),
        })),
        _ => Ok(None),
    }
}

fn is_redis_url(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

/// A comma-separated list of Redis URLs, at least one.
fn url_list(env: &Env, variable: &'static str, list: &str, of_what: &str) -> Result<Vec<SecretString>, SettingsError> {
    let urls: Vec<&str> = list.split(',').map(str::trim).filter(|url| !url.is_empty()).collect();
    if urls.is_empty() || !urls.iter().all(|url| is_redis_url(url)) {
        let accepts = format!("a comma-separated list of redis:// or rediss:// URLs of {of_what}");
        return Err(env.invalid(variable, "[REDACTED]", &accepts));
    }
    Ok(urls.into_iter().map(SecretString::from).collect())
}

struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    /// A set, non-empty variable.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// A set variable, else its default (from `VARIABLES`; "" for one without a default value).
    fn get_or_default(&self, name: &str) -> &str {
        self.get(name).or_else(|| variables::default_value(name)).unwrap_or_default()
    }

    fn invalid(&self, variable: &'static str, value: &str, accepts: &str) -> SettingsError {
        SettingsError { variable, value: value.to_owned(), accepts: accepts.to_owned() }
    }

    /// A number in `range`, or the variable's default value from `VARIABLES`.
    fn number<T>(&self, name: &'static str, range: std::ops::RangeInclusive<T>) -> Result<T, SettingsError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        self.parse_number(name, self.get_or_default(name), range)
    }

    /// A number in `range`, or `default` (for a variable whose default is computed at start).
    fn number_or<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, SettingsError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        match self.get(name) {
            Some(raw) => self.parse_number(name, raw, range),
            None => Ok(default),
        }
    }

    fn parse_number<T>(
        &self,
        name: &'static str,
        raw: &str,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, SettingsError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        match raw.parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(self.invalid(name, raw, &format!("an integer from {} to {}", range.start(), range.end()))),
        }
    }

    fn flag(&self, name: &'static str) -> Result<bool, SettingsError> {
        match self.get_or_default(name).to_ascii_lowercase().as_str() {
            "false" | "0" | "no" | "off" => Ok(false),
            "true" | "1" | "yes" | "on" => Ok(true),
            other => Err(self.invalid(name, other, "true or false")),
        }
    }
}

fn valid_node_id(id: &str) -> bool {
    crate::domain::UserName::parse(id).is_ok()
}

fn default_node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| valid_node_id(h))
        .unwrap_or_else(|| "rookery".to_owned())
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn default_log_format() -> LogFormat {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() { LogFormat::Pretty } else { LogFormat::Json }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_vars(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn defaults_need_no_variables() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.bind, "0.0.0.0:8080".parse().unwrap());
        assert_eq!((s.max_frame_bytes, s.max_body_bytes), (65536, 16384));
        assert_eq!((s.rate_per_sec, s.rate_burst, s.max_rooms_per_session), (20, 40, 64));
        assert_eq!((s.outbound_queue_frames, s.outbound_queue_bytes), (1024, 4 << 20));
        assert_eq!((s.history_len, s.max_connections), (1000, 100_000));
        assert_eq!(s.presence_max_users, 100);
        assert_eq!((s.max_pending_requests, s.request_timeout), (1024, Duration::from_secs(30)));
        assert_eq!(s.heartbeat, Duration::from_secs(20));
        assert!(matches!(s.auth, AuthSettings::Anonymous));
        assert!(!s.echo_endpoint && s.api_key.is_none() && s.allowed_origins.is_none());
        assert!(s.redis.is_none());
        assert_eq!((s.bus_shards, s.bus_retention_ms), (1, 600_000));
        assert_eq!((s.node_ttl_ms, s.ready_max_lag_ms), (15_000, 10_000));
        assert_eq!((s.drain_delay_ms, s.drain_rate, s.shutdown_grace_ms), (5_000, 2_000, 25_000));
    }

    #[test]
    fn bad_values_name_the_variable_and_what_it_accepts() {
        let err = settings(&[("ROOKERY_RATE_PER_SEC", "fast")]).unwrap_err();
        assert_eq!(err.variable, "ROOKERY_RATE_PER_SEC");
        assert!(err.to_string().contains("an integer from 1 to"), "{err}");
        assert_eq!(settings(&[("ROOKERY_BIND", "nowhere")]).unwrap_err().variable, "ROOKERY_BIND");
        assert_eq!(settings(&[("ROOKERY_AUTH", "magic")]).unwrap_err().variable, "ROOKERY_AUTH");
        assert_eq!(settings(&[("ROOKERY_AUTH", "jwt")]).unwrap_err().variable, "ROOKERY_AUTH");
        assert_eq!(settings(&[("ROOKERY_ECHO_ENDPOINT", "maybe")]).unwrap_err().variable, "ROOKERY_ECHO_ENDPOINT");
        assert_eq!(settings(&[("ROOKERY_NODE_ID", "a b")]).unwrap_err().variable, "ROOKERY_NODE_ID");
        assert_eq!(settings(&[("ROOKERY_REDIS_URL", "localhost:6379")]).unwrap_err().variable, "ROOKERY_REDIS_URL");
        let cluster = |list| settings(&[("ROOKERY_REDIS_CLUSTER_NODES", list)]).map_err(|e| e.variable);
        assert_eq!(cluster("redis://a:7000,b:7001").unwrap_err(), "ROOKERY_REDIS_CLUSTER_NODES");
        assert_eq!(cluster(" , ").unwrap_err(), "ROOKERY_REDIS_CLUSTER_NODES");
        let both =
            settings(&[("ROOKERY_REDIS_URL", "redis://a:6379"), ("ROOKERY_REDIS_CLUSTER_NODES", "redis://a:7000")]);
        assert_eq!(both.unwrap_err().variable, "ROOKERY_REDIS_CLUSTER_NODES");
    }

    #[test]
    fn a_redis_cluster_is_found_through_its_seed_nodes_and_spreads_rooms_over_sixteen_shards() {
        let s = settings(&[("ROOKERY_REDIS_CLUSTER_NODES", "redis://a:7000, rediss://:pw@b:7001,")]).unwrap();
        let Some(RedisTarget::Cluster(seeds)) = &s.redis else { panic!("not a cluster: {:?}", s.redis) };
        assert_eq!(seeds.len(), 2);
        assert_eq!(s.bus_shards, DEFAULT_CLUSTER_BUS_SHARDS);
        let pinned = settings(&[("ROOKERY_REDIS_CLUSTER_NODES", "redis://a:7000"), ("ROOKERY_BUS_SHARDS", "3")]);
        assert_eq!(pinned.unwrap().bus_shards, 3);
        let one = settings(&[("ROOKERY_REDIS_URL", "redis://a:6379")]).unwrap();
        assert!(matches!(one.redis, Some(RedisTarget::Server(_))) && one.bus_shards == DEFAULT_BUS_SHARDS);
    }

    #[test]
    fn the_table_s_defaults_are_the_constants_the_code_uses() {
        let default = |name| variables::default_value(name).map(str::to_owned);
        assert_eq!(default("ROOKERY_BUS_SHARDS"), Some(DEFAULT_BUS_SHARDS.to_string()));
        let presence = crate::engine::DEFAULT_PRESENCE_MAX_USERS;
        assert_eq!(default("ROOKERY_PRESENCE_MAX_USERS"), Some(presence.to_string()));
        assert_eq!(default("RUST_LOG").as_deref(), Some(crate::telemetry::DEFAULT_LOG_FILTER));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let s = settings(&[
            ("ROOKERY_API_KEY", "api-key-7f3a"),
            ("ROOKERY_AUTH", "jwt"),
            ("ROOKERY_JWT_SECRET", "jwt-secret-91c2"),
            ("ROOKERY_REDIS_URL", "redis://rookery:redis-password-5d0e@cache:6379"),
        ])
        .unwrap();
        let cluster = settings(&[("ROOKERY_REDIS_CLUSTER_NODES", "redis://:cluster-password-0b7e@a:7000")]).unwrap();
        let debug = format!("{s:?} {:?} {cluster:?}", s.clone());
        for secret in ["api-key-7f3a", "jwt-secret-91c2", "redis-password-5d0e", "cluster-password-0b7e"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("REDACTED"), "{debug}");
        let bad = settings(&[("ROOKERY_REDIS_URL", "http://u:redis-password-5d0e@cache")]).unwrap_err();
        assert!(!bad.to_string().contains("redis-password-5d0e"), "{bad}");
    }

    #[test]
    fn origins_are_a_trimmed_lowercase_list() {
        let s = settings(&[("ROOKERY_ALLOWED_ORIGINS", "https://Chat.example.com/, http://localhost:8080")]).unwrap();
        assert_eq!(s.allowed_origins.unwrap(), ["https://chat.example.com", "http://localhost:8080"]);
    }
}
