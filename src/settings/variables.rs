//! The one list of the environment variables a node reads, with their defaults and meanings.
//!
//! `Settings::from_vars` takes its defaults from here, `rookery --help` prints this list, and a
//! test holds the README's configuration table to it, so the three cannot disagree.

/// A variable's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableDefault {
    /// A value the node parses like a set one (shown in backticks).
    Value(&'static str),
    /// What happens when the variable is unset, in words (computed at start, or nothing).
    Text(&'static str),
}

/// One environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    pub default: VariableDefault,
    /// What it does, in Markdown (the README's wording).
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: VariableDefault, meaning: &'static str) -> Variable {
    Variable { name, default, meaning }
}

use VariableDefault::{Text, Value};

/// Every variable, in the README's order.
pub const VARIABLES: &[Variable] = &[
    var("ROOKERY_BIND", Value("0.0.0.0:8080"), "address to listen on"),
    var("ROOKERY_NODE_ID", Text("hostname"), "this node's name (in `welcome`, logs, and the cluster)"),
    var("ROOKERY_WORKERS", Text("CPU count"), "HTTP worker threads (sessions are spread over them)"),
    var(
        "ROOKERY_LOG_FORMAT",
        Text("`pretty` on a terminal, else `json`"),
        "`json` or `pretty`; filter with `RUST_LOG` (default `info`)",
    ),
    var("ROOKERY_AUTH", Value("anonymous"), "`anonymous` (`?user=`) or `jwt`"),
    var("ROOKERY_JWT_SECRET", Text("unset"), "HS256 secret (with `ROOKERY_AUTH=jwt`), at least 32 bytes"),
    var(
        "ROOKERY_JWT_PUBLIC_KEY_FILE",
        Text("unset"),
        "PEM public key for RS256 or ES256 (with `ROOKERY_AUTH=jwt`; set this or the secret)",
    ),
    var("ROOKERY_JWT_LEEWAY_SECS", Value("30"), "clock skew allowed on `exp` and `nbf`"),
    var(
        "ROOKERY_ALLOWED_ORIGINS",
        Text("unset (any)"),
        "comma list of allowed `Origin`s; others get 403 at the handshake",
    ),
    var("ROOKERY_MAX_CONNECTIONS", Value("100000"), "sessions per node; more get 503 before the upgrade"),
    var(
        "ROOKERY_MAX_PENDING_REQUESTS",
        Value("1024"),
        "HTTP connections that have not finished their request (head or body, or idle between requests), \
         apart from sessions; a new one past it closes the one pending longest",
    ),
    var(
        "ROOKERY_REQUEST_TIMEOUT_MS",
        Value("30000"),
        "time each HTTP request has for its head and body (counted from accept, or from the previous \
         answer); past it the connection is closed",
    ),
    var("ROOKERY_HEARTBEAT_MS", Value("20000"), "WebSocket ping interval; 3 silent intervals close the session"),
    var("ROOKERY_MAX_FRAME_BYTES", Value("65536"), "largest inbound message (fragments together); over it: close 1009"),
    var("ROOKERY_MAX_BODY_BYTES", Value("16384"), "largest `send` body; over it: `too_large`"),
    var("ROOKERY_RATE_PER_SEC", Value("20"), "`send` token-bucket rate per session"),
    var("ROOKERY_RATE_BURST", Value("40"), "`send` token-bucket size per session"),
    var("ROOKERY_MAX_ROOMS_PER_SESSION", Value("64"), "rooms one session may be in"),
    var("ROOKERY_OUTBOUND_QUEUE_FRAMES", Value("1024"), "frames queued for a session before it is closed with 1013"),
    var("ROOKERY_OUTBOUND_QUEUE_BYTES", Value("4194304"), "bytes queued for a session before it is closed with 1013"),
    var(
        "ROOKERY_OUTBOUND_BUDGET_BYTES",
        Value("536870912"),
        "bytes queued for all sessions of the node together; over it the sessions holding the most are closed with 1013",
    ),
    var(
        "ROOKERY_HISTORY_LEN",
        Value("1000"),
        "messages retained per room (for `history` and resume; up to an eighth more, at most 64, before a trim)",
    ),
    var(
        "ROOKERY_PRESENCE_MAX_USERS",
        Value("100"),
        "rooms with more users list no members on `joined` and announce no joins or leaves \
         ([protocol](docs/protocol.md#join))",
    ),
    var("ROOKERY_API_KEY", Text("unset (API off)"), "bearer key for the server API"),
    var("ROOKERY_ECHO_ENDPOINT", Value("false"), "serve the conformance echo endpoint `/ws/echo`"),
    var(
        "ROOKERY_REDIS_URL",
        Text("unset (in-memory engine)"),
        "`redis://` or `rediss://` URL: run the Redis engine, so nodes sharing it act as one server \
         (see [`docs/cluster.md`](docs/cluster.md))",
    ),
    var(
        "ROOKERY_REDIS_CLUSTER_NODES",
        Text("unset"),
        "instead of `ROOKERY_REDIS_URL`: comma-separated `redis://`/`rediss://` URLs of Redis Cluster nodes to \
         run on ([cluster](docs/cluster.md#redis-cluster))",
    ),
    var(
        "ROOKERY_REDIS_SENTINELS",
        Text("unset"),
        "instead of `ROOKERY_REDIS_URL`: comma-separated `redis://`/`rediss://` URLs of Redis Sentinels that name \
         the primary ([cluster](docs/cluster.md#redis-sentinel))",
    ),
    var(
        "ROOKERY_REDIS_SENTINEL_MASTER",
        Text("unset"),
        "with `ROOKERY_REDIS_SENTINELS`: the name they monitor the primary by",
    ),
    var(
        "ROOKERY_REDIS_MIN_REPLICAS",
        Value("0"),
        "a `send` is acked only once this many Redis replicas have it (`WAIT`, 250 ms), else `not_replicated` \
         ([cluster](docs/cluster.md#failover-and-what-an-ack-means))",
    ),
    var(
        "ROOKERY_BUS_SHARDS",
        Value("1"),
        "bus streams rooms are spread over (must be the same on every node); 16 when unset on a Redis Cluster",
    ),
    var(
        "ROOKERY_BUS_RETENTION_MS",
        Value("600000"),
        "bus entries older than this are trimmed; also how long a room remembers `send` keys (both engines)",
    ),
    var("ROOKERY_BUS_READ_COUNT", Value("512"), "bus entries read per shard per read"),
    var(
        "ROOKERY_BUS_READ_INTERVAL_MS",
        Value("2"),
        "while busy, bus reads start at most this often, so each takes what arrived meanwhile \
         (less CPU per message for up to this much latency; `0`: read again at once)",
    ),
    var(
        "ROOKERY_PUBLISH_INTERVAL_MS",
        Value("2"),
        "on one Redis server, while busy, a worker thread's publishes go to Redis at most this \
         often, together (less Redis CPU per message for up to this much latency; `0`: each at once)",
    ),
    var(
        "ROOKERY_NODE_TTL_MS",
        Value("15000"),
        "a node silent this long is reaped: its users leave their rooms within it (same on every node)",
    ),
    var("ROOKERY_READY_MAX_LAG_MS", Value("10000"), "`/readyz` is 503 while the node is further behind the bus"),
    var(
        "ROOKERY_DRAIN_DELAY_MS",
        Value("5000"),
        "on SIGTERM, how long `/readyz` is 503 before sessions start closing (so load balancers see it)",
    ),
    var("ROOKERY_DRAIN_RATE", Value("2000"), "sessions closed per second while draining"),
    var("ROOKERY_SHUTDOWN_GRACE_MS", Value("25000"), "the drain's deadline; the process exits by then"),
    var(
        "SSL_CERT_FILE",
        Text("system trust store"),
        "PEM bundle to verify a `rediss://` server with (e.g. a private CA)",
    ),
    var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        Text("unset (no traces)"),
        "OTLP/HTTP collector, e.g. `http://localhost:4318`; the other `OTEL_*` variables work too \
         ([`docs/observability.md`](docs/observability.md))",
    ),
    var(
        "RUST_LOG",
        Value("info"),
        "log filter, e.g. `rookery=debug` (release builds stop at `debug`: trace-level events are compiled out)",
    ),
];

/// The default value of `name`, when it has one the node parses.
pub fn default_value(name: &str) -> Option<&'static str> {
    VARIABLES.iter().find(|v| v.name == name).and_then(|v| match v.default {
        Value(value) => Some(value),
        Text(_) => None,
    })
}

/// The README's configuration table, row for row.
pub fn markdown_table() -> String {
    let mut table = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for v in VARIABLES {
        let default = match v.default {
            Value(value) => format!("`{value}`"),
            Text(text) => text.to_owned(),
        };
        table.push_str(&format!("| `{}` | {default} | {} |\n", v.name, v.meaning));
    }
    table
}

/// The list `rookery --help` ends with: plain text, each variable with its default, then what it
/// does on the next line.
pub fn help_text() -> String {
    let mut text = String::from(
        "Settings are environment variables; every one has a default, and an invalid value stops the node\n\
         at start with a message naming the variable and what it accepts.\n\nEnvironment:\n",
    );
    for v in VARIABLES {
        let default = match v.default {
            Value(value) => value.to_owned(),
            Text(text) => plain(text),
        };
        text.push_str(&format!("  {}  [default: {default}]\n      {}\n", v.name, plain(v.meaning)));
    }
    text
}

/// Markdown to plain text: `[text](link)` becomes `text`, backticks go.
fn plain(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut rest = markdown;
    while let Some(open) = rest.find('[') {
        let (before, from_bracket) = rest.split_at(open);
        out.push_str(before);
        // A link is `[text]` followed at once by `(target)`.
        let link = from_bracket.find(']').filter(|&end| from_bracket[end + 1..].starts_with('(')).and_then(|end| {
            from_bracket[end..].find(')').map(|close| (&from_bracket[1..end], &from_bracket[end + close + 1..]))
        });
        match link {
            Some((text, after)) => {
                out.push_str(text);
                rest = after;
            }
            None => {
                out.push('[');
                rest = &from_bracket[1..];
            }
        }
    }
    out.push_str(rest);
    out.replace('`', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_keeps_link_text_and_drops_backticks() {
        assert_eq!(plain("see [`docs/cluster.md`](docs/cluster.md) now"), "see docs/cluster.md now");
        assert_eq!(plain("`json` or [x] and [protocol](a#b)"), "json or [x] and protocol");
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup(); // sorted, so every duplicate is adjacent
        assert_eq!(names.len(), count);
    }
}
