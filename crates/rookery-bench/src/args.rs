//! `rookery-bench`'s command line: `--name value` options and node URLs, parsed by clap, then
//! checked as a whole (a run that cannot do what it was asked is refused before it starts).

use std::{net::IpAddr, time::Duration};

use clap::{CommandFactory, Parser, error::ErrorKind};

/// A load generator for rookery nodes that checks every delivery.
///
/// Exits 0 when every delivery arrived once and in order, 1 when deliveries were lost,
/// duplicated or out of order, connections failed or were dropped, or the nodes answered with
/// errors, and 2 when the run could not start.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "rookery-bench", version)]
pub struct BenchArgs {
    /// Node WebSocket URLs, e.g. ws://127.0.0.1:8080/ws; connections go round-robin over them
    #[arg(value_name = "URL", required = true, value_parser = websocket_url)]
    pub urls: Vec<String>,
    /// Connections to open
    #[arg(long, value_name = "C", default_value_t = 100, value_parser = at_least_one)]
    pub connections: usize,
    /// Rooms to spread them over
    #[arg(long, value_name = "R", default_value_t = 10, value_parser = at_least_one)]
    pub rooms: usize,
    /// Connections that send (spread over the rooms)
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub senders: usize,
    /// Messages per second per sender
    #[arg(long, value_name = "P", default_value_t = 10.0, value_parser = rate)]
    pub rate: f64,
    /// Seconds of sending, or of holding with --idle
    #[arg(long, value_name = "T", default_value = "10", value_parser = seconds)]
    pub duration: Duration,
    /// Message body size, at least 40 (the body carries a timestamp)
    #[arg(long, value_name = "B", default_value_t = 64, value_parser = body_bytes)]
    pub body_bytes: usize,
    /// New connections per second
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub ramp: u32,
    /// Every send carries an idempotency key, as the project's clients' sends do (`rookery
    /// chat`, the TypeScript client, the page)
    #[arg(long)]
    pub keys: bool,
    /// Connect, join and hold; send nothing
    #[arg(long)]
    pub idle: bool,
    /// Connect, join and disconnect at --ramp per second for --duration; nothing is held
    #[arg(long, conflicts_with = "idle")]
    pub churn: bool,
    /// Print a JSON report instead of the summary
    #[arg(long)]
    pub json: bool,
    /// Node process ids: report their RSS and CPU seconds before and after
    #[arg(long, value_name = "P1,P2", value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Local addresses to connect from, round-robin (each has its own ephemeral ports)
    #[arg(long, value_name = "A1,A2", value_delimiter = ',')]
    pub source_ips: Vec<IpAddr>,
    /// Seconds to wait for deliveries after the last send
    #[arg(long, value_name = "T", default_value = "5", value_parser = seconds)]
    pub drain: Duration,
    /// Room names are this prefix and the room's number
    #[arg(long, value_name = "X", default_value = "bench-")]
    pub room_prefix: String,
    /// Index of this process's first connection, when several processes share a run (user
    /// names are bench- and the connection's index)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub first_connection: usize,
}

fn websocket_url(url: &str) -> Result<String, String> {
    if url.starts_with("ws://") { Ok(url.to_owned()) } else { Err("expected a ws:// URL".to_owned()) }
}

fn at_least_one(raw: &str) -> Result<usize, String> {
    match raw.parse() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected an integer of at least 1".to_owned()),
    }
}

fn rate(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        _ => Err("expected a number above 0".to_owned()),
    }
}

fn body_bytes(raw: &str) -> Result<usize, String> {
    match raw.parse() {
        Ok(n) if n >= 40 => Ok(n),
        _ => Err("expected an integer of at least 40 (the body carries a timestamp)".to_owned()),
    }
}

fn seconds(raw: &str) -> Result<Duration, String> {
    raw.parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| "expected a number of seconds".to_owned())
}

/// Parses a whole command line (the program name first). `--help` and `--version` come back as
/// errors of their own kinds, which print to stdout and exit 0.
pub fn parse<I, T>(args: I) -> Result<BenchArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut parsed = BenchArgs::try_parse_from(args)?;
    if parsed.churn {
        // Every connection of a churn run leaves after joining: --ramp x --duration of them.
        parsed.connections = (f64::from(parsed.ramp) * parsed.duration.as_secs_f64()).round().max(1.0) as usize;
        parsed.senders = 0;
    }
    if parsed.senders > parsed.connections {
        return Err(BenchArgs::command().error(ErrorKind::ArgumentConflict, "--senders cannot exceed --connections"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<BenchArgs, clap::Error> {
        parse(std::iter::once("rookery-bench").chain(line.split_whitespace()))
    }

    #[test]
    fn the_definition_is_consistent() {
        BenchArgs::command().debug_assert();
    }

    #[test]
    fn parses_every_option() {
        let parsed = args(
            "--connections 2000 --rooms 20 --senders 20 --rate 50 --duration 1.5 --body-bytes 100 \
             --ramp 500 --drain 2 --keys --pids 1,2 --source-ips 127.0.0.2,127.0.0.3 --json ws://a/ws ws://b/ws",
        )
        .unwrap();
        assert_eq!((parsed.connections, parsed.rooms, parsed.senders, parsed.rate), (2000, 20, 20, 50.0));
        assert_eq!((parsed.duration, parsed.body_bytes, parsed.ramp), (Duration::from_millis(1500), 100, 500));
        assert_eq!((parsed.pids, parsed.source_ips.len(), parsed.urls.len()), (vec![1, 2], 2, 2));
        assert!(parsed.json && parsed.keys && !parsed.idle);
        let defaults = args("ws://a/ws").unwrap();
        assert_eq!((defaults.connections, defaults.rooms, defaults.senders), (100, 10, 10));
        assert!(!defaults.keys);
        assert_eq!((defaults.duration, defaults.drain), (Duration::from_secs(10), Duration::from_secs(5)));
        assert_eq!(args("--churn --ramp 100 --duration 2 ws://a").unwrap().connections, 200);
    }

    #[test]
    fn refuses_what_cannot_run_with_exit_code_2() {
        for line in [
            "--connections 10",
            "--senders 5 --connections 2 ws://a",
            "--body-bytes 10 ws://a",
            "--rate 0 ws://a",
            "--ramp 0 ws://a",
            "--frobnicate ws://a",
            "http://a",
        ] {
            let error = args(line).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{line}: {error}");
            assert!(error.to_string().contains("try '--help'"), "{line}: {error}");
        }
        let unknown = args("--frobnicate ws://a").unwrap_err().to_string();
        assert!(unknown.contains("unexpected argument") && unknown.contains("Usage: rookery-bench"), "{unknown}");
        assert_eq!(args("--help").unwrap_err().kind(), ErrorKind::DisplayHelp);
        assert_eq!(args("--version").unwrap_err().kind(), ErrorKind::DisplayVersion);
    }
}
