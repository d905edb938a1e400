//! `scripts/local-cluster.sh`: the compose topology without Docker, on one Redis and on a Redis
//! Cluster (`--redis-cluster`), run for real with the test build of the node.

use std::process::Command;

use crate::deploy::repo;

/// The local cluster script, stopped (SIGTERM, so it cleans up) when dropped.
struct LocalCluster {
    child: std::process::Child,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// A port p with p+1..=p+3 free too (the script puts the nodes there).
fn free_port_block() -> u16 {
    loop {
        let base = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        if base < 65000 && (1..=3).all(|n| std::net::TcpListener::bind(("127.0.0.1", base + n)).is_ok()) {
            return base;
        }
    }
}

/// A port p with p..=p+5 free, and their cluster bus ports (10000 above) too: where
/// `--redis-cluster` puts its six servers.
fn free_redis_cluster_ports() -> u16 {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    loop {
        let base = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        if base <= 65535 - 10005 && (0..6).all(|n| free(base + n) && free(base + 10000 + n)) {
            return base;
        }
    }
}

/// The ports of a local cluster: the balancer, the nodes' base, and Redis (the first of six with
/// `--redis-cluster`).
struct Ports {
    lb: u16,
    base: u16,
    redis: u16,
}

/// Runs scripts/local-cluster.sh with `args` on `ports` and the test build of the node, and
/// waits for its `ready:` line.
fn start_local_cluster(args: &[&str], ports: &Ports, within: std::time::Duration) -> (LocalCluster, String) {
    use std::io::BufRead;

    let mut child = Command::new(repo("scripts/local-cluster.sh"))
        .args(args)
        .env("LB_PORT", ports.lb.to_string())
        .env("NODE_BASE_PORT", ports.base.to_string())
        .env("REDIS_PORT", ports.redis.to_string())
        .env("ROOKERY_BIN", env!("CARGO_BIN_EXE_rookery"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("run scripts/local-cluster.sh");
    let stdout = child.stdout.take().expect("stdout");
    let cluster = LocalCluster { child };
    let (ready, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("ready:") {
                let _ = ready.send(line);
            }
        }
    });
    let line = lines.recv_timeout(within).expect("the local cluster became ready");
    (cluster, line)
}

/// Two clients through the balancer land on different nodes and chat.
async fn chat_through_the_balancer(lb: u16) {
    use crate::helpers::Client;

    let url = format!("ws://127.0.0.1:{lb}/ws");
    let mut alice = Client::connect(&format!("{url}?user=alice")).await;
    let mut bob = Client::connect(&format!("{url}?user=bob")).await;
    assert_ne!(alice.welcome["node"], bob.welcome["node"], "round-robin put them on different nodes");
    alice.join("lobby").await;
    bob.join("lobby").await;
    let id = alice.say("lobby", "through the balancer").await;
    let (message, _) = bob.recv_until("message").await;
    assert_eq!(message["id"].as_str(), Some(id.as_str()));
}

#[actix_web::test]
async fn the_local_cluster_balances_clients_over_nodes_and_they_chat() {
    let ports = Ports { lb: free_port_block(), base: free_port_block(), redis: free_port_block() };
    let (cluster, _) = start_local_cluster(&[], &ports, std::time::Duration::from_secs(30));
    chat_through_the_balancer(ports.lb).await;
    drop(cluster);
}

/// `redis-cli -p port args...`: its output, or a failed test.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): apt-get install -y redis-server"));
    assert!(output.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).replace('\r', "")
}

/// The slot ranges each primary of the cluster at `port` serves, by the primary's port.
fn primaries_slots(port: u16) -> std::collections::BTreeMap<u16, Vec<(u16, u16)>> {
    let mut primaries = std::collections::BTreeMap::new();
    for line in redis_cli(port, &["cluster", "nodes"]).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 8 && fields[2].contains("master") {
            let address = fields[1].split('@').next().expect("ip:port@bus");
            let primary: u16 = address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
            let ranges = fields[8..]
                .iter()
                .map(|range| {
                    let (from, to) = range.split_once('-').unwrap_or((range, range));
                    (from.parse().expect("a slot"), to.parse().expect("a slot"))
                })
                .collect();
            primaries.insert(primary, ranges);
        }
    }
    primaries
}

#[actix_web::test]
async fn the_local_cluster_with_redis_cluster_makes_three_primaries_with_a_replica_each() {
    let ports = Ports { lb: free_port_block(), base: free_port_block(), redis: free_redis_cluster_ports() };
    let (cluster, ready) = start_local_cluster(&["--redis-cluster"], &ports, std::time::Duration::from_secs(60));
    let servers: Vec<u16> = (ports.redis..ports.redis + 6).collect();
    let mut roles = Vec::new();
    for &port in &servers {
        let info = redis_cli(port, &["cluster", "info"]);
        assert!(info.lines().any(|l| l == "cluster_state:ok"), "{port}: {info}");
        assert!(info.lines().any(|l| l == "cluster_known_nodes:6"), "{port}: {info}");
        let role = redis_cli(port, &["role"]);
        let role = role.lines().next().unwrap_or_default().to_owned();
        if role == "slave" {
            let replication = redis_cli(port, &["info", "replication"]);
            assert!(replication.lines().any(|l| l == "master_link_status:up"), "{port} synced: {replication}");
        }
        roles.push((port, role));
    }
    let primaries: Vec<u16> = roles.iter().filter(|(_, role)| role == "master").map(|(port, _)| *port).collect();
    assert_eq!(primaries.len(), 3, "{roles:?}");
    assert_eq!(roles.iter().filter(|(_, role)| role == "slave").count(), 3, "{roles:?}");
    // The nodes are given the primaries, and the ready line says so.
    let seeds: Vec<String> = primaries.iter().map(|port| format!("redis://127.0.0.1:{port}")).collect();
    assert!(ready.contains(&format!("primaries {}", seeds.join(","))), "{ready}");
    // With the default 16 shards, the shards' hash tags land on every primary.
    let slots = primaries_slots(ports.redis);
    assert_eq!(slots.keys().copied().collect::<Vec<_>>(), primaries);
    // Counted by the first slot each primary serves, so in the order of the slot ranges.
    let mut per_primary = std::collections::BTreeMap::<u16, usize>::new();
    for shard in 0..16 {
        let slot: u16 = redis_cli(ports.redis, &["cluster", "keyslot", &format!("rookery:{{s{shard}}}:history:room")])
            .trim()
            .parse()
            .expect("a slot");
        let owner = slots.iter().find(|(_, ranges)| ranges.iter().any(|&(from, to)| (from..=to).contains(&slot)));
        *per_primary.entry(owner.expect("a primary serves the slot").1[0].0).or_default() += 1;
    }
    assert_eq!(per_primary.values().copied().collect::<Vec<_>>(), [6, 4, 6], "{per_primary:?}");
    // The script that made the cluster can run again: it finds the cluster and leaves it working.
    let again = Command::new("sh")
        .arg(repo("deploy/redis-cluster/create.sh"))
        .args(servers.iter().map(|port| format!("127.0.0.1:{port}")))
        .output()
        .expect("run create.sh");
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && said.contains("already form a cluster"), "{said}");
    assert_eq!(primaries_slots(ports.redis), slots, "the same cluster");
    drop(cluster);
}

#[actix_web::test]
async fn the_local_cluster_on_a_redis_cluster_balances_clients_over_nodes_and_they_chat() {
    let ports = Ports { lb: free_port_block(), base: free_port_block(), redis: free_redis_cluster_ports() };
    let (cluster, _) = start_local_cluster(&["--redis-cluster"], &ports, std::time::Duration::from_secs(60));
    chat_through_the_balancer(ports.lb).await;
    // The nodes ran on the cluster: their heartbeats (one every node TTL / 5, so a node whose
    // first one met a cluster still settling registers at its next) and the room's history.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while redis_cli(ports.redis, &["-c", "zcard", "rookery:nodes"]).trim() != "3" {
        assert!(std::time::Instant::now() < deadline, "the three nodes never all heartbeat into the cluster");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let histories: usize = (ports.redis..ports.redis + 6)
        .filter(|&port| redis_cli(port, &["role"]).starts_with("master"))
        .map(|port| redis_cli(port, &["--scan", "--pattern", "rookery:*:history:lobby"]).lines().count())
        .sum();
    assert_eq!(histories, 1, "the lobby's history is on one primary");
    drop(cluster);
}

#[test]
fn the_local_cluster_script_refuses_an_unknown_argument() {
    let output = Command::new(repo("scripts/local-cluster.sh"))
        .arg("--redis-sentinel")
        .env("ROOKERY_BIN", "/nonexistent")
        .output()
        .expect("run scripts/local-cluster.sh");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown argument --redis-sentinel"));
}
