//! `rookery-bench`'s command line: `--name value` options and node URLs.

use std::{net::IpAddr, time::Duration};

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchArgs {
    /// Node WebSocket URLs (`ws://host:port/ws`); connections go round-robin over them.
    pub urls: Vec<String>,
    pub connections: usize,
    pub rooms: usize,
    pub senders: usize,
    /// Messages per second per sender.
    pub rate: f64,
    pub duration: Duration,
    pub body_bytes: usize,
    /// New connections per second.
    pub ramp: u32,
    /// Connect, join and hold; send nothing.
    pub idle: bool,
    /// Connect, join and disconnect at `--ramp` per second for `--duration`; nothing is held.
    pub churn: bool,
    pub json: bool,
    /// Node process ids to read RSS and CPU time from, before and after.
    pub pids: Vec<u32>,
    /// Local addresses to connect from, round-robin (each has its own ephemeral ports).
    pub source_ips: Vec<IpAddr>,
    /// How long to wait for deliveries after the last send.
    pub drain: Duration,
    /// Room names are `<prefix><n>`; user names `bench-<first connection>-<n>`.
    pub room_prefix: String,
    /// The index of this process's first connection, when several processes share a run.
    pub first_connection: usize,
}

impl Default for BenchArgs {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            connections: 100,
            rooms: 10,
            senders: 10,
            rate: 10.0,
            duration: Duration::from_secs(10),
            body_bytes: 64,
            ramp: 1000,
            idle: false,
            churn: false,
            json: false,
            pids: Vec::new(),
            source_ips: Vec::new(),
            drain: Duration::from_secs(5),
            room_prefix: "bench-".into(),
            first_connection: 0,
        }
    }
}

/// The usage text.
pub const USAGE: &str = "\
usage: rookery-bench [options] URL [URL...]
  URL                    a node's WebSocket URL, e.g. ws://127.0.0.1:8080/ws
  --connections C        connections to open (default 100)
  --rooms R              rooms to spread them over (default 10)
  --senders S            connections that send (default 10; spread over the rooms)
  --rate P               messages per second per sender (default 10)
  --duration T           seconds of sending, or of holding with --idle (default 10)
  --body-bytes B         message body size, at least 40 (default 64)
  --ramp N               new connections per second (default 1000)
  --idle                 connect, join and hold; send nothing
  --churn                connect, join and disconnect at --ramp per second for --duration
  --drain T              seconds to wait for deliveries after the last send (default 5)
  --pids P1,P2           node pids: report their RSS and CPU seconds before and after
  --source-ips A1,A2     local addresses to connect from (more ephemeral ports)
  --room-prefix X        room name prefix (default bench-)
  --first-connection N   index of this process's first connection (several processes, one run)
  --json                 print a JSON report instead of the summary";

/// A bad command line; the text says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}\n\n{USAGE}")]
pub struct ArgsError(String);

fn value<T: std::str::FromStr>(name: &str, raw: Option<String>) -> Result<T, ArgsError> {
    let raw = raw.ok_or_else(|| ArgsError(format!("{name} needs a value")))?;
    raw.parse().map_err(|_| ArgsError(format!("{name}: cannot use {raw:?}")))
}

fn list<T: std::str::FromStr>(name: &str, raw: Option<String>) -> Result<Vec<T>, ArgsError> {
    let raw: String = value(name, raw)?;
    raw.split(',').filter(|s| !s.is_empty()).map(|item| value(name, Some(item.to_owned()))).collect()
}

fn seconds(name: &str, raw: Option<String>) -> Result<Duration, ArgsError> {
    let seconds: f64 = value(name, raw)?;
    Duration::try_from_secs_f64(seconds).map_err(|_| ArgsError(format!("{name}: {seconds} is not a duration")))
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<BenchArgs, ArgsError> {
    let mut parsed = BenchArgs::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--connections" => parsed.connections = value(&arg, args.next())?,
            "--rooms" => parsed.rooms = value(&arg, args.next())?,
            "--senders" => parsed.senders = value(&arg, args.next())?,
            "--rate" => parsed.rate = value(&arg, args.next())?,
            "--duration" => parsed.duration = seconds(&arg, args.next())?,
            "--body-bytes" => parsed.body_bytes = value(&arg, args.next())?,
            "--ramp" => parsed.ramp = value(&arg, args.next())?,
            "--drain" => parsed.drain = seconds(&arg, args.next())?,
            "--pids" => parsed.pids = list(&arg, args.next())?,
            "--source-ips" => parsed.source_ips = list(&arg, args.next())?,
            "--room-prefix" => parsed.room_prefix = value(&arg, args.next())?,
            "--first-connection" => parsed.first_connection = value(&arg, args.next())?,
            "--idle" => parsed.idle = true,
            "--churn" => parsed.churn = true,
            "--json" => parsed.json = true,
            "-h" | "--help" => {
                return Err(ArgsError("rookery-bench: a load generator that checks every delivery".into()));
            }
            url if url.starts_with("ws://") => parsed.urls.push(url.to_owned()),
            other => return Err(ArgsError(format!("unknown argument {other:?}"))),
        }
    }
    if parsed.churn {
        // Every connection of a churn run leaves after joining: --ramp x --duration of them.
        parsed.connections = (f64::from(parsed.ramp) * parsed.duration.as_secs_f64()).round().max(1.0) as usize;
        parsed.senders = 0;
    }
    if parsed.urls.is_empty() {
        return Err(ArgsError("give at least one ws:// URL".into()));
    }
    if parsed.connections == 0 || parsed.rooms == 0 || parsed.ramp == 0 {
        return Err(ArgsError("--connections, --rooms and --ramp must be at least 1".into()));
    }
    if parsed.senders > parsed.connections {
        return Err(ArgsError("--senders cannot exceed --connections".into()));
    }
    if parsed.body_bytes < 40 {
        return Err(ArgsError("--body-bytes must be at least 40 (the body carries a timestamp)".into()));
    }
    if !(parsed.rate > 0.0 && parsed.rate.is_finite()) {
        return Err(ArgsError("--rate must be above 0".into()));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<BenchArgs, ArgsError> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn parses_every_option() {
        let parsed = args(
            "--connections 2000 --rooms 20 --senders 20 --rate 50 --duration 1.5 --body-bytes 100 \
             --ramp 500 --drain 2 --pids 1,2 --source-ips 127.0.0.2,127.0.0.3 --json ws://a/ws ws://b/ws",
        )
        .unwrap();
        assert_eq!((parsed.connections, parsed.rooms, parsed.senders, parsed.rate), (2000, 20, 20, 50.0));
        assert_eq!((parsed.duration, parsed.body_bytes, parsed.ramp), (Duration::from_millis(1500), 100, 500));
        assert_eq!((parsed.pids, parsed.source_ips.len(), parsed.urls.len()), (vec![1, 2], 2, 2));
        assert!(parsed.json && !parsed.idle);
    }

    #[test]
    fn refuses_what_cannot_run() {
        assert!(args("--connections 10").unwrap_err().to_string().contains("ws:// URL"));
        assert!(args("--senders 5 --connections 2 ws://a").is_err());
        assert!(args("--body-bytes 10 ws://a").is_err());
        assert!(args("--rate 0 ws://a").is_err());
        assert!(args("--frobnicate ws://a").unwrap_err().to_string().contains("unknown argument"));
    }
}
