//! `rookery-bench` against two real nodes on a real Redis: every delivery checked.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde_json::Value;

use crate::{
    node_process::NodeProcess,
    redis_server::{RedisServer, free_port},
};

/// The load generator. It is a crate of its own, so cargo does not build it for the node's
/// tests: build it here, with the cargo and profile that built this test and into the same
/// target directory (a no-op when it is up to date). `ROOKERY_BENCH_BIN` runs another build.
pub fn bench_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("ROOKERY_BENCH_BIN") {
                return bin.into();
            }
            // This test is <target>/<profile>/deps/node-<hash>.
            let exe = std::env::current_exe().expect("the test's own path");
            let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>");
            let target_dir = profile_dir.parent().expect("<target>");
            let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
                Some("debug") | None => "dev",
                Some(other) => other,
            };
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "--locked", "-p", "rookery-bench", "--profile", profile, "--target-dir"])
                .arg(target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo");
            assert!(status.success(), "cargo build -p rookery-bench failed");
            profile_dir.join("rookery-bench")
        })
        .clone()
}

/// Runs the load generator with the options and URLs of `line` and `--json`; it must succeed.
/// Returns its report.
fn successful_run(line: &str) -> Value {
    let output =
        Command::new(bench_bin()).args(line.split_whitespace()).arg("--json").output().expect("run rookery-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout).expect("a JSON report")
}

/// How many idempotency keys Redis remembers.
async fn remembered_keys(redis: &RedisServer) -> u64 {
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("rookery:*:sent:*").query_async(&mut conn).await.expect("KEYS");
    keys.len() as u64
}

#[actix_web::test]
async fn the_load_generator_checks_every_delivery_across_two_nodes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let vars = |id| [("ROOKERY_REDIS_URL", url.as_str()), ("ROOKERY_NODE_ID", id), ("ROOKERY_RATE_PER_SEC", "100")];
    let a = NodeProcess::start(&vars("node-a")).await;
    let b = NodeProcess::start(&vars("node-b")).await;
    let (url_a, url_b) = (format!("ws://127.0.0.1:{}/ws", a.port), format!("ws://127.0.0.1:{}/ws", b.port));
    let pids = format!("{},{}", a.pid(), b.pid());
    let report = successful_run(&format!(
        "--connections 40 --rooms 4 --senders 4 --rate 20 --duration 1.5 --keys --drain 5 --pids {pids} {url_a} {url_b}"
    ));
    assert_eq!(report["connections_established"], 40);
    let acked = report["messages_acked"].as_u64().unwrap_or(0);
    assert!(acked >= 4 * 20, "four senders for 1.5 s at 20/s: {report}");
    // Every acked message reaches the ten members of its room, on either node.
    assert_eq!(report["deliveries_expected"].as_u64(), Some(acked * 10));
    assert_eq!(report["deliveries_received"], report["deliveries_expected"]);
    assert_eq!((report["lost"].as_u64(), report["duplicates"].as_u64()), (Some(0), Some(0)));
    // With --keys every send carried an idempotency key of its own, as the clients' do.
    assert_eq!(remembered_keys(&redis).await, acked, "one key remembered per message");
    // A second run into the same rooms while Redis remembers the first run's keys: its keys are
    // its own, so its sends are stored and delivered, not answered with the first run's ids.
    let again = successful_run(&format!(
        "--connections 8 --rooms 2 --senders 2 --rate 20 --duration 0.5 --keys --drain 5 {url_a}"
    ));
    let acked_again = again["messages_acked"].as_u64().unwrap_or(0);
    assert_eq!(remembered_keys(&redis).await, acked + acked_again, "the second run's keys are new");
    // Every delivery was timed, and the percentiles are ordered and within loopback's reach.
    let latency = &report["latency_ms"];
    assert_eq!(latency["count"], report["deliveries_received"], "{report}");
    let quantiles: Vec<f64> = ["p50", "p90", "p99", "p999", "max"].iter().filter_map(|q| latency[q].as_f64()).collect();
    assert_eq!(quantiles.len(), 5, "{latency}");
    assert!(quantiles[0] > 0.0 && quantiles.windows(2).all(|pair| pair[0] <= pair[1]), "{latency}");
    assert!(quantiles[2] < 2000.0, "p99 on loopback under 2 s: {latency}");
    assert_eq!(report["nodes_after"].as_array().map(Vec::len), Some(2));
    assert!(report["nodes_after"][0]["rss_bytes"].as_u64().is_some_and(|rss| rss > 1 << 20));
}

#[actix_web::test]
async fn a_churn_run_connects_joins_and_leaves_and_the_node_returns_to_zero() {
    use crate::helpers::http_text;

    let node = NodeProcess::start(&[]).await;
    let url = format!("ws://127.0.0.1:{}/ws", node.port);
    let report = successful_run(&format!("--churn --ramp 100 --duration 1 --rooms 3 --drain 0.5 {url}"));
    assert_eq!(
        (report["connections_established"].as_u64(), report["connections_failed"].as_u64()),
        (Some(100), Some(0))
    );
    assert_eq!(report["connect_ms"]["count"], 100);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, metrics) = http_text(&node, "GET", "/metrics", &[], None).await;
        if metrics.lines().any(|l| l == "rookery_connections 0") && metrics.lines().any(|l| l == "rookery_rooms 0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "sessions or rooms were left behind:\n{metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `scripts/bench-idle.sh` holds idle connections from several bench processes on one node and
/// reports its RSS per connection.
#[test]
fn the_idle_script_spreads_connections_over_processes_and_reports_memory_per_connection() {
    let output = Command::new("bash")
        .args(["scripts/bench-idle.sh", "40", "4", "200"])
        .env("ROOKERY_BIN", env!("CARGO_BIN_EXE_rookery"))
        .env("ROOKERY_BENCH_BIN", bench_bin())
        .env("BENCH_NODE_PORT", free_port().to_string())
        .env("BENCH_REDIS_PORT", free_port().to_string())
        .env("BENCH_PER_PROCESS", "25")
        .env("ROOKERY_HEARTBEAT_MS", "300")
        .output()
        .expect("run scripts/bench-idle.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        stdout.contains("engine       redis, 4 rooms, ramp 200/s, heartbeat 300 ms, 2 bench processes"),
        "{stdout}"
    );
    assert!(stdout.contains("connections  40 held"), "{stdout}");
    // The figure is the node's RSS growth over the connections held, both read for real.
    let line = |prefix: &str| stdout.lines().find_map(|line| line.strip_prefix(prefix)).map(str::trim);
    let (before, after) = line("node RSS")
        .and_then(|rss| rss.split_once('(')?.1.strip_suffix(" KiB)")?.split_once(" -> "))
        .and_then(|(before, after)| Some((before.parse::<f64>().ok()?, after.parse::<f64>().ok()?)))
        .unwrap_or_else(|| panic!("no node RSS in KiB: {stdout}"));
    assert!(before > 1024.0 && after > 1024.0, "a node's RSS is over 1 MiB: {stdout}");
    let per_connection = line("per conn")
        .and_then(|kib| kib.strip_suffix(" KiB")?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no memory per connection: {stdout}"));
    assert!((per_connection - (after - before) / 40.0).abs() <= 0.05, "(after - before) / 40: {stdout}");
    assert!(per_connection.abs() < 1024.0, "an idle connection costs KiB, not MiB: {stdout}");
}

/// `scripts/bench-redis-requests.py` calls the publish function as the nodes do (an error reply
/// fails the run) and reports Redis's CPU per request for each shape it was asked for.
#[test]
fn the_redis_requests_script_reports_cpu_per_request_for_each_shape() {
    let output = Command::new("python3")
        .args(["scripts/bench-redis-requests.py", "--rate", "400", "--connections", "2", "--seconds", "0.3"])
        .args(["--batches", "1,4"])
        .output()
        .expect("run scripts/bench-redis-requests.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for shape in
        ["| ping | 1 |", "| ping | 4 |", "| publish | 1 |", "| publish | 4 |", "| plain | 1 |", "| plain | 4 |"]
    {
        let row = stdout.lines().find(|line| line.starts_with(shape)).unwrap_or_else(|| panic!("{shape}: {stdout}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let requests: u64 = cells[3].parse().unwrap_or_else(|_| panic!("a request count: {row}"));
        // 400 a second for 0.3 s; a loaded machine may fall short, never over.
        assert!((40..=130).contains(&requests), "{row}");
        assert!(cells[5].ends_with(" us"), "{row}");
    }
}

/// A run that does not do what was asked fails, and says why: connections that cannot be made,
/// or messages the node refuses.
#[actix_web::test]
async fn runs_that_do_not_do_what_was_asked_fail_and_say_why() {
    let node = NodeProcess::start(&[]).await;
    let nowhere = format!("ws://127.0.0.1:{}/ws", free_port());
    let off_path = format!("ws://127.0.0.1:{}/elsewhere", node.port);
    for (url, reason) in [(nowhere.as_str(), "connect"), (off_path.as_str(), "handshake refused: HTTP/1.1 404")] {
        let output = Command::new(bench_bin())
            .args(["--connections", "3", "--rooms", "1", "--senders", "1", "--duration", "0.2", "--drain", "0.2", url])
            .output()
            .expect("run rookery-bench");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{url}: {stdout}\n{stderr}");
        assert!(stdout.contains("0 established, 3 failed"), "{url}: {stdout}");
        assert!(stdout.contains("verdict      FAILED: connections failed or were dropped"), "{url}: {stdout}");
        assert!(stdout.contains(&format!("failed x3: {reason}")), "{url}: the failures name why: {stdout}");
    }

    let url = format!("ws://127.0.0.1:{}/ws", node.port);
    let over_the_limit = "20000"; // ROOKERY_MAX_BODY_BYTES is 16,384 by default
    let output = Command::new(bench_bin())
        .args(["--connections", "2", "--rooms", "1", "--senders", "1", "--rate", "10", "--duration", "0.5"])
        .args(["--drain", "1", "--body-bytes", over_the_limit, &url])
        .output()
        .expect("run rookery-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("2 established, 0 failed, 0 dropped"), "{stdout}");
    assert!(stdout.contains("errors {\"too_large\": "), "{stdout}");
    assert!(stdout.contains("verdict      FAILED: the nodes answered with errors"), "{stdout}");
}

/// Idle bench connections answer the node's pings: with a heartbeat several times shorter than
/// the run, a client that did not would be closed, counted as dropped, and fail the run.
#[actix_web::test]
async fn idle_connections_answer_heartbeats_and_are_held_to_the_end() {
    let node = NodeProcess::start(&[("ROOKERY_HEARTBEAT_MS", "200")]).await;
    let url = format!("ws://127.0.0.1:{}/ws", node.port);
    let report = successful_run(&format!("--idle --connections 10 --rooms 2 --duration 1.5 {url}"));
    assert_eq!(
        (report["connections_established"].as_u64(), report["connections_dropped"].as_u64()),
        (Some(10), Some(0))
    );
}
