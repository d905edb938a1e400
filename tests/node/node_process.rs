//! A node as a child process running the real `rookery` binary, for tests that kill it with
//! SIGKILL, pause it with SIGSTOP, or restart it with the same id.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::helpers::{Endpoint, http};

/// A running `rookery` process; killed when dropped.
pub struct NodeProcess {
    pub port: u16,
    vars: Vec<(String, String)>,
    /// Where its standard output (the log) goes, if kept.
    log: Option<PathBuf>,
    child: Child,
}

impl Endpoint for NodeProcess {
    fn port(&self) -> u16 {
        self.port
    }
}

impl NodeProcess {
    /// Starts a node with `vars` on a free port and waits until it is ready.
    pub async fn start(vars: &[(&str, &str)]) -> NodeProcess {
        Self::start_logging(vars, None).await
    }

    /// Like [`Self::start`], writing the node's log (its standard output) to `log`.
    pub async fn start_logging(vars: &[(&str, &str)], log: Option<PathBuf>) -> NodeProcess {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let child = spawn(port, &vars, log.as_deref());
        let node = NodeProcess { port, vars, log, child };
        node.wait_ready().await;
        node
    }

    /// Runs a node that is expected to refuse to start; returns its exit status and stderr.
    pub fn refuses_to_start(vars: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut command = command(port, &vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>());
        let output = command.stderr(Stdio::piped()).output().expect("run the rookery binary");
        (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the node with SIGKILL: no session is closed, nothing is cleaned up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the node again with the same settings and port, after [`Self::kill`].
    pub async fn restart(&mut self) {
        self.child = spawn(self.port, &self.vars, self.log.as_deref());
        self.wait_ready().await;
    }

    /// Sends SIGTERM: the node drains and exits.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Waits up to `wait` for the process to exit; its status, or `None` if it is still running.
    pub async fn exit_status(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Freezes the process (SIGSTOP) until [`Self::resume`].
    pub fn pause(&self) {
        crate::helpers::freeze(self.child.id());
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && http(self, "GET", "/readyz", &[], None).await.0 == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "node on port {} did not become ready", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn command(port: u16, vars: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rookery"));
    command
        .env("ROOKERY_BIND", format!("127.0.0.1:{port}"))
        .env("ROOKERY_WORKERS", "1")
        .env("ROOKERY_LOG_FORMAT", "pretty")
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null());
    command
}

fn spawn(port: u16, vars: &[(String, String)], log: Option<&Path>) -> Child {
    let show_logs = std::env::var_os("ROOKERY_TEST_NODE_LOGS").is_some();
    let stdout = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).expect("create the node's log file")),
        None if show_logs => Stdio::inherit(),
        None => Stdio::null(),
    };
    command(port, vars)
        .stdout(stdout)
        .stderr(if show_logs { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .expect("start the rookery binary")
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
