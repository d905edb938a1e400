//! The README's shell commands, run as a new user would run them: every line of every fenced
//! `sh` block is listed below, either to run (the nodes it starts are called, then stopped) or
//! with the reason CI cannot run it. A command added to the README, or changed, fails this test
//! until it is listed, so the README cannot rot unnoticed again.
//!
//! What differs from a user's terminal, and why: the ports (8080, 8081, 8082, Redis's 6379)
//! become free ones, so tests can run side by side; a node drains at once on SIGTERM; and
//! `--release` is dropped, since a release build costs CI minutes and changes neither which
//! binary `cargo run` picks nor how it reads its arguments (`ROOKERY_README_RELEASE=1` keeps it).

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{helpers::Client, redis_server::RedisServer};

/// What to do with a README command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// It starts a node: start it, wait until it answers, stop it at the end.
    Serve,
    /// It runs to its end against the nodes started before it, and exits 0.
    Call,
    /// CI cannot run it, for this reason.
    Skip(&'static str),
}

const WEBSOCAT: &str = "websocat is not installed in CI, and the lines after it are frames typed into it";

/// Every command line of the README's `sh` blocks, in order.
const COMMANDS: &[(&str, Run)] = &[
    ("cargo run --release", Run::Serve),
    (
        "ROOKERY_REDIS_URL=redis://127.0.0.1:6379 ROOKERY_NODE_ID=a ROOKERY_BIND=127.0.0.1:8081 cargo run --release &",
        Run::Serve,
    ),
    (
        "ROOKERY_REDIS_URL=redis://127.0.0.1:6379 ROOKERY_NODE_ID=b ROOKERY_BIND=127.0.0.1:8082 cargo run --release",
        Run::Serve,
    ),
    ("cargo run --release -- chat ws://localhost:8080/ws --user bob --room lobby", Run::Call),
    ("echo \"deploy finished\" | cargo run --release -- chat ws://localhost:8080/ws --user ci --room ops", Run::Call),
    ("websocat 'ws://localhost:8080/ws?user=alice'", Run::Skip(WEBSOCAT)),
    ("{\"type\":\"join\",\"room\":\"lobby\"}", Run::Skip(WEBSOCAT)),
    ("{\"type\":\"send\",\"room\":\"lobby\",\"body\":\"hello\"}", Run::Skip(WEBSOCAT)),
    ("scripts/test.sh", Run::Skip("the test command itself: this test runs inside it")),
    (
        "scripts/bench-cluster.sh --nodes 2 --connections 1000 --rooms 100 --senders 50 --rate 10 --duration 20",
        Run::Skip(
            "a 20 s load run on release builds, too heavy for CI's two cores; tests/node/bench.rs runs the \
             load generator on live nodes and scripts/bench-idle.sh",
        ),
    ),
];

/// The lines of the README's fenced `sh` blocks, without blank lines and `#` comments.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("read README.md");
    let mut commands = Vec::new();
    let mut in_shell = false;
    for line in readme.lines() {
        let trimmed = line.trim();
        if let Some(fence) = trimmed.strip_prefix("```") {
            in_shell = !in_shell && matches!(fence, "sh" | "bash" | "shell" | "console");
        } else if in_shell && !trimmed.is_empty() && !trimmed.starts_with('#') {
            commands.push(trimmed.to_owned());
        }
    }
    commands
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// A command line as a shell in the repository runs it, in a process group of its own (so
/// stopping it reaches the node behind `cargo run`).
fn shell(line: &str, env: &[(&str, String)]) -> Command {
    let mut command = Command::new("bash");
    command.arg("-c").arg(line).current_dir(repo()).envs(env.iter().map(|(k, v)| (k, v)));
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
}

fn signal_group(child: &Child, signal: &str) {
    let _ = Command::new("kill").args([signal, "--", &format!("-{}", child.id())]).status();
}

/// `GET path` on a local port: the status code, or `None` while nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A node started by a README command; stopped with SIGTERM (or killed) when dropped.
struct Started {
    line: String,
    port: u16,
    child: Child,
}

impl Started {
    /// Stops the node as an operator would, and checks it drained and exited 0.
    fn stop(mut self) {
        signal_group(&self.child, "-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the node") {
                assert!(status.success(), "`{}` exited with {status} on SIGTERM", self.line);
                return;
            }
            assert!(Instant::now() < deadline, "`{}` did not stop within 30 s of SIGTERM", self.line);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal_group(&self.child, "-KILL");
            let _ = self.child.wait();
        }
    }
}

/// What a client that joins `room` on the node at `port` finds in its history.
fn room_history(port: u16, room: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let mut client = Client::connect(&format!("ws://127.0.0.1:{port}/ws?user=reader")).await;
        client.join(room).await;
        client.request(serde_json::json!({"type": "history", "room": room})).await.to_string()
    })
}

#[test]
fn every_shell_command_of_the_readme_is_listed_here() {
    let listed: Vec<&str> = COMMANDS.iter().map(|(line, _)| *line).collect();
    let written = readme_commands();
    for line in &written {
        assert!(listed.contains(&line.as_str()), "README.md has a command this test does not run:\n  {line}");
    }
    for line in &listed {
        assert!(written.iter().any(|w| w == line), "a command listed here is no longer in README.md:\n  {line}");
    }
}

#[test]
fn the_readme_commands_start_call_and_stop_real_nodes() {
    let release = std::env::var_os("ROOKERY_README_RELEASE").is_some();
    let redis = RedisServer::start();
    let ports = [("8080", free_port()), ("8081", free_port()), ("8082", free_port())];
    let env = [
        // `cargo run` alone binds ROOKERY_BIND's default, 0.0.0.0:8080: here, a free port.
        ("ROOKERY_BIND", format!("127.0.0.1:{}", ports[0].1)),
        ("ROOKERY_DRAIN_DELAY_MS", "0".to_owned()),
        ("ROOKERY_LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let rewrite = |line: &str| {
        let mut line = line.replace("redis://127.0.0.1:6379", &redis.url());
        for (written, port) in &ports {
            line = line.replace(&format!(":{written}"), &format!(":{port}"));
        }
        if !release {
            line = line.replace(" --release", "");
        }
        line
    };

    let mut started: Vec<Started> = Vec::new();
    for line in readme_commands() {
        let run = COMMANDS.iter().find(|(listed, _)| *listed == line).map(|(_, run)| *run);
        let command = rewrite(&line);
        match run {
            Some(Run::Serve) => {
                let command = command.trim_end_matches('&').trim_end().to_owned();
                let port = command
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("ROOKERY_BIND=127.0.0.1:"))
                    .map_or(ports[0].1, |port| port.parse().expect("a port"));
                let child = shell(&command, &env)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("run bash");
                let node = Started { line: line.clone(), port, child };
                // `cargo run` may have to build first.
                let deadline = Instant::now() + Duration::from_secs(180);
                while http_status(node.port, "/readyz") != Some(200) {
                    assert!(Instant::now() < deadline, "`{line}` did not serve a ready node on port {port}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                assert_eq!(http_status(node.port, "/healthz"), Some(200), "{line}");
                started.push(node);
            }
            Some(Run::Call) => {
                let output = shell(&command, &env).stdin(Stdio::null()).output().expect("run bash");
                let stdout = String::from_utf8_lossy(&output.stdout);
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(output.status.success(), "`{line}` failed ({}):\n{stdout}\n{stderr}", output.status);
                // Each call here is `rookery chat`: it reached the node, and what it was given
                // (with no input it ends at once) went through.
                assert!(stdout.contains("* connected to "), "`{line}` did not connect:\n{stdout}");
                assert!(!stdout.lines().any(|l| l.starts_with("! ")), "`{line}` was answered with an error:\n{stdout}");
                if line.starts_with("echo \"deploy finished\"") {
                    let history = room_history(ports[0].1, "ops");
                    assert!(history.contains("\"body\":\"deploy finished\""), "`{line}`: not in #ops: {history}");
                }
            }
            Some(Run::Skip(_)) => {}
            None => panic!("README.md has a command this test does not list:\n  {line}"),
        }
    }
    assert_eq!(started.len(), 3, "the single node and the two nodes sharing Redis");
    for node in started {
        node.stop();
    }
}
