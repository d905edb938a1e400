//! A real `redis-server` on a free port, started by the test and killed when dropped.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rookery::engine::redis::RedisConnection;

/// A running redis-server with its own data directory.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    durable: bool,
    /// Serves TLS only, with the test certificates in `tests/fixtures/tls`.
    tls: bool,
    /// Replicates the server on this port.
    replica_of: Option<u16>,
}

impl RedisServer {
    /// Starts redis-server (from PATH) on a free port, keeping nothing on disk.
    pub fn start() -> RedisServer {
        Self::start_on(free_port())
    }

    /// Starts an empty redis-server on `port` (e.g. the port of one that was stopped).
    pub fn start_on(port: u16) -> RedisServer {
        Self::launch(port, false, false)
    }

    /// Starts a redis-server that speaks only TLS (`rediss://`), with a certificate for
    /// 127.0.0.1 signed by `tests/fixtures/tls/ca.pem`.
    pub fn start_tls() -> RedisServer {
        Self::launch(free_port(), false, true)
    }

    /// Starts a redis-server that writes every change to its append-only file before answering
    /// (`appendfsync always`), so [`Self::restart`] after [`Self::kill`] finds all of it.
    pub fn start_durable() -> RedisServer {
        Self::launch(free_port(), true, false)
    }

    fn launch(port: u16, durable: bool, tls: bool) -> RedisServer {
        let dir = std::env::temp_dir().join(format!("rookery-redis-{port}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("redis data directory");
        let mut server = RedisServer { port, child: None, dir, durable, tls, replica_of: None };
        server.restart();
        server
    }

    /// Starts a replica of `primary` and waits until it has synced.
    pub fn start_replica_of(primary: &RedisServer) -> RedisServer {
        let mut replica = Self::launch(free_port(), false, false);
        replica.replica_of = Some(primary.port);
        replica.restart();
        replica.wait_until_synced();
        replica
    }

    /// Waits until this server, a replica, has synced with its primary.
    pub fn wait_until_synced(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.info("replication").contains("master_link_status:up") {
            assert!(Instant::now() < deadline, "the replica on {} did not sync", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `INFO section`, as redis-cli prints it.
    pub fn info(&self, section: &str) -> String {
        let output = Command::new("redis-cli").args(["-p", &self.port.to_string(), "INFO", section]).output();
        output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    /// Kills the server with SIGKILL; the data directory stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        let Some(child) = &self.child else { panic!("redis-server is not running") };
        crate::helpers::freeze(child.id());
    }

    /// Thaws a paused server (SIGCONT): it carries out what it was sent meanwhile.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let Some(child) = &self.child else { panic!("redis-server is not running") };
        let status = Command::new("kill").arg(signal).arg(child.id().to_string()).status().expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts the server again on the same port and data directory and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let persistence: &[&str] =
            if self.durable { &["--appendonly", "yes", "--appendfsync", "always"] } else { &["--appendonly", "no"] };
        let port = self.port.to_string();
        let fixture = |name: &str| format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"));
        let listen: Vec<String> = if self.tls {
            ["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"]
                .into_iter()
                .map(str::to_owned)
                .chain([
                    "--tls-cert-file".into(),
                    fixture("redis.pem"),
                    "--tls-key-file".into(),
                    fixture("redis-key.pem"),
                ])
                .chain(["--tls-ca-cert-file".into(), fixture("ca.pem")])
                .collect()
        } else {
            vec!["--port".into(), port]
        };
        let child = Command::new("redis-server")
            .args(&listen)
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(persistence)
            .args(
                self.replica_of
                    .iter()
                    .flat_map(|port| ["--replicaof".to_owned(), "127.0.0.1".to_owned(), port.to_string()]),
            )
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it with `apt-get install -y redis-server`")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(if self.tls { accepts(self.port) } else { answers_ping(self.port) }) {
            assert!(Instant::now() < deadline, "redis-server did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Inbox entries node `group` has read but not acknowledged, over the shards of the default
    /// layout.
    pub async fn pending(&self, group: &str) -> i64 {
        let mut conn = self.connection().await;
        let mut total = 0;
        for shard in 0..rookery::settings::DEFAULT_BUS_SHARDS {
            let (count, ..): (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
                .arg(format!("rookery:{{s{shard}}}:inbox:{group}"))
                .arg(group)
                .query_async(&mut conn)
                .await
                .expect("XPENDING");
            total += count;
        }
        total
    }

    /// A connection of the kind the engine uses (multiplexed, reconnecting).
    pub async fn connection(&self) -> RedisConnection {
        let client = redis::Client::open(self.url()).expect("a redis URL");
        RedisConnection::connect(client).await.expect("redis connection")
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// True once the server answers PING (it refuses commands while loading its data).
fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
