//! Real Redis Sentinels on free ports, watching a primary as `rookery`, killed when dropped.
//! Facts they rely on (start-up, failover timing) are in `../shared/notes/redis-cluster.md`.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{redis_cluster::cli, redis_server::free_port};

/// The name the Sentinels know the primary by.
pub const MASTER: &str = "rookery";

/// Three Sentinels, quorum two, that call a primary down after one silent second.
pub struct Sentinels {
    ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Sentinels {
    /// Starts them watching the primary on `primary` and waits until each names it.
    pub fn start(primary: u16) -> Sentinels {
        let dir = std::env::temp_dir().join(format!("rookery-sentinel-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("sentinel directory");
        let mut sentinels = Sentinels { ports: Vec::new(), children: Vec::new(), dir };
        for _ in 0..3 {
            let port = free_port();
            // Sentinel rewrites its config file: each gets a writable one of its own.
            let config = sentinels.dir.join(format!("sentinel-{port}.conf"));
            let text = format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n"
            );
            std::fs::write(&config, text).expect("write sentinel.conf");
            let child = Command::new("redis-server")
                .arg(&config)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start redis-server --sentinel ({e}): apt-get install -y redis-server")
                });
            sentinels.ports.push(port);
            sentinels.children.push(child);
        }
        let expected = primary.to_string();
        sentinels.wait_for("the Sentinels to name the primary", |named| named == expected);
        sentinels
    }

    /// `ROOKERY_REDIS_SENTINELS`.
    pub fn urls(&self) -> String {
        self.ports.iter().map(|port| format!("redis://127.0.0.1:{port}")).collect::<Vec<_>>().join(",")
    }

    /// Waits until every Sentinel names a primary other than the one on `old`; returns its port.
    pub fn wait_for_failover(&self, old: u16) -> u16 {
        let old = old.to_string();
        self.wait_for("a Sentinel failover", |named| !named.is_empty() && named != old);
        self.primary().parse().expect("a port")
    }

    /// The port of the primary the first Sentinel names.
    pub fn primary(&self) -> String {
        named(self.ports[0])
    }

    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ports.iter().all(|port| done(&named(*port))) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The port of the primary the Sentinel on `port` names ("" when it names none).
fn named(port: u16) -> String {
    let reply = cli(port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]).unwrap_or_default();
    reply.lines().nth(1).unwrap_or_default().trim().to_owned()
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
