//! A real Redis Cluster on free ports: `redis-server --cluster-enabled yes` per node, joined by
//! `redis-cli --cluster create`, killed when dropped. Facts it relies on (replica sync delay,
//! failover timing) are in `../shared/notes/redis-cluster.md`.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::redis_server::free_port;

/// One `redis-server` of the cluster.
struct ClusterNode {
    port: u16,
    child: Option<Child>,
}

/// A running cluster: `primaries` primaries, each with `replicas` replicas.
pub struct RedisCluster {
    nodes: Vec<ClusterNode>,
    primaries: usize,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts the servers, creates the cluster, and waits until every slot is served and every
    /// replica has synced.
    pub fn start(primaries: usize, replicas: usize) -> RedisCluster {
        let dir = std::env::temp_dir().join(format!("rookery-cluster-{}", uuid::Uuid::new_v4().simple()));
        let mut cluster = RedisCluster { nodes: Vec::new(), primaries, dir };
        for _ in 0..primaries * (1 + replicas) {
            let (port, child) = cluster.spawn_on_free_ports();
            cluster.nodes.push(ClusterNode { port, child: Some(child) });
        }
        let addresses: Vec<String> = cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let mut create = vec!["create".to_owned()];
        create.extend(addresses);
        create.extend(["--cluster-replicas".to_owned(), replicas.to_string(), "--cluster-yes".to_owned()]);
        cluster_command(&create);
        for node in &cluster.nodes {
            wait_for("cluster_state:ok", || {
                cli(node.port, &["CLUSTER", "INFO"]).is_some_and(|info| info.contains("cluster_state:ok"))
            });
        }
        if replicas > 0 {
            wait_for("replicas in sync", || cluster.replicas_in_sync());
        }
        cluster
    }

    /// Starts a node on free ports and waits until it answers. A free port can be taken by
    /// another test's socket before the server binds it (then the server exits): it is started
    /// again on other ports.
    fn spawn_on_free_ports(&self) -> (u16, Child) {
        for _ in 0..5 {
            let port = free_port();
            let mut child = self.spawn(port);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                // Ours, not another test's server that took the port first.
                let pid = format!("process_id:{}", child.id());
                if cli(port, &["INFO", "server"]).is_some_and(|info| info.lines().any(|l| l.trim() == pid)) {
                    return (port, child);
                }
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("no redis-server of the cluster started in five attempts");
    }

    fn spawn(&self, port: u16) -> Child {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).expect("cluster node directory");
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            .args(["--cluster-port", &free_port().to_string()])
            .args(["--cluster-node-timeout", "2000", "--cluster-replica-validity-factor", "0"])
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it with `apt-get install -y redis-server`")
            })
    }

    /// The seed list for `ROOKERY_REDIS_CLUSTER_NODES`: every primary it was created with.
    pub fn seeds(&self) -> String {
        self.nodes[..self.primaries]
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The ports of the servers that are primaries now (and alive).
    pub fn primary_ports(&self) -> Vec<u16> {
        self.live().filter(|port| role(*port).as_deref() == Some("master")).collect()
    }

    /// The port of the primary serving `key` now.
    pub fn primary_of(&self, key: &str) -> u16 {
        let slot: u16 = self.ask("CLUSTER", &["KEYSLOT", key]).parse().expect("a slot number");
        let primaries = self.primary_ports();
        *primaries
            .iter()
            .find(|&&port| serves(port, slot))
            .unwrap_or_else(|| panic!("no primary of {primaries:?} serves slot {slot}"))
    }

    /// The port of a replica of the primary on `primary`.
    pub fn replica_of(&self, primary: u16) -> u16 {
        let info = cli(primary, &["INFO", "replication"]).unwrap_or_default();
        let line = info.lines().find(|l| l.starts_with("slave0:")).expect("the primary has a replica");
        let port = line.split(',').find_map(|field| field.strip_prefix("port=")).expect("a replica port");
        port.trim().parse().expect("a port number")
    }

    /// The cluster id of the server on `port`.
    pub fn node_id(&self, port: u16) -> String {
        let nodes = cli(port, &["CLUSTER", "NODES"]).unwrap_or_default();
        let line = nodes.lines().find(|l| l.split_whitespace().nth(2).is_some_and(|f| f.contains("myself")));
        line.and_then(|l| l.split_whitespace().next()).expect("the node's own line").to_owned()
    }

    /// Moves the first `slots` slots of the primary on `from` to the one on `to` with
    /// `redis-cli --cluster reshard`, keys and all.
    pub fn reshard(&self, from: u16, to: u16, slots: u16) {
        cluster_command(&[
            "reshard".to_owned(),
            format!("127.0.0.1:{from}"),
            "--cluster-from".to_owned(),
            self.node_id(from),
            "--cluster-to".to_owned(),
            self.node_id(to),
            "--cluster-slots".to_owned(),
            slots.to_string(),
            "--cluster-yes".to_owned(),
        ]);
    }

    /// Waits until the replica on `replica` has everything its primary on `primary` wrote.
    pub fn wait_for_replication(&self, primary: u16, replica: u16) {
        let offset = |port: u16| -> Option<u64> {
            let info = cli(port, &["INFO", "replication"])?;
            info.lines().find_map(|l| l.strip_prefix("master_repl_offset:")).and_then(|o| o.trim().parse().ok())
        };
        wait_for("the replica to catch up", || match (offset(primary), offset(replica)) {
            (Some(written), Some(copied)) => copied >= written,
            _ => false,
        });
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server on `port`.
    pub fn signal(&self, port: u16, signal: &str) {
        let node = self.nodes.iter().find(|n| n.port == port).expect("a node of the cluster");
        let pid = node.child.as_ref().expect("a running server").id();
        let status = Command::new("kill").arg(signal).arg(pid.to_string()).status().expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Kills (SIGKILL) the server on `port`.
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).expect("a node of the cluster");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the killed server on `port` again with its cluster config: it rejoins the
    /// cluster (a primary that was replaced comes back as a replica of its successor), and
    /// waits until every replica has synced.
    pub fn restart(&mut self, port: u16) {
        let child = self.spawn(port);
        let node = self.nodes.iter_mut().find(|n| n.port == port).expect("a node of the cluster");
        node.child = Some(child);
        wait_for("the restarted node to sync", || role(port).as_deref() == Some("slave") && self.replicas_in_sync());
    }

    /// Waits until live primaries serve every slot again (a replica took over those of a killed
    /// primary) and every live node sees the cluster as ok.
    pub fn wait_for_failover(&self) {
        wait_for("a replica promoted", || {
            let served: usize = self.primary_ports().into_iter().map(|port| own_slots(port).len()).sum();
            served == 16384
                && self
                    .live()
                    .all(|port| cli(port, &["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:ok")))
        });
    }

    /// `command` on any live node.
    pub fn ask(&self, command: &str, args: &[&str]) -> String {
        let port = self.live().next().expect("a live node");
        let mut all = vec![command];
        all.extend_from_slice(args);
        cli(port, &all).unwrap_or_default()
    }

    fn live(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.port)
    }

    fn replicas_in_sync(&self) -> bool {
        self.live()
            .filter(|port| role(*port).as_deref() == Some("slave"))
            .all(|port| cli(port, &["INFO", "replication"]).is_some_and(|info| info.contains("master_link_status:up")))
    }
}

/// The server's role: `master` or `slave`.
fn role(port: u16) -> Option<String> {
    cli(port, &["INFO", "replication"])?.lines().find_map(|l| l.strip_prefix("role:").map(|r| r.trim().to_owned()))
}

/// Whether the primary on `port` serves `slot`.
fn serves(port: u16, slot: u16) -> bool {
    own_slots(port).contains(&slot)
}

/// The slots the server on `port` serves, from its own line of `CLUSTER NODES`.
fn own_slots(port: u16) -> Vec<u16> {
    let Some(nodes) = cli(port, &["CLUSTER", "NODES"]) else { return Vec::new() };
    let Some(line) = nodes.lines().find(|l| l.split_whitespace().nth(2).is_some_and(|f| f.contains("myself"))) else {
        return Vec::new();
    };
    line.split_whitespace()
        .skip(8)
        .filter_map(|range| {
            let mut bounds = range.split('-').map(|b| b.parse::<u16>().ok());
            match (bounds.next().flatten(), bounds.next()) {
                (Some(low), Some(Some(high))) => Some(low..=high),
                (Some(only), None) => Some(only..=only),
                // Slots being migrated (`[slot->-node]`) are not counted.
                _ => None,
            }
        })
        .flatten()
        .collect()
}

/// `redis-cli -p port args...`, its output trimmed; `None` when it failed.
/// Runs `redis-cli --cluster <args>`; a failure fails the test with what redis-cli said.
fn cluster_command(args: &[String]) {
    let output = Command::new("redis-cli")
        .arg("--cluster")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run redis-cli --cluster");
    assert!(
        output.status.success(),
        "redis-cli --cluster {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn cli(port: u16, args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !text.starts_with("Could not connect") && !text.starts_with("ERR")).then_some(text)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    // Generous: a loaded CI machine makes cluster creation and failover slow.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
