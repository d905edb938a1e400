//! What running rookery for real relies on: the `healthcheck` subcommand the container image
//! uses, the load balancer config (checked with `nginx -t`), and the compose file.

use std::process::Command;

use crate::node_process::NodeProcess;

fn healthcheck(bind: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rookery"))
        .arg("healthcheck")
        .env("ROOKERY_BIND", bind)
        .output()
        .expect("run rookery healthcheck")
}

#[actix_web::test]
async fn the_healthcheck_subcommand_passes_for_a_serving_node_and_fails_without_one() {
    let node = NodeProcess::start(&[]).await;
    let ok = healthcheck(&format!("0.0.0.0:{}", node.port));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    drop(node);
    let free = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
    let down = healthcheck(&free.to_string());
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).starts_with("rookery healthcheck: cannot connect"));
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `nginx -t` on `config`; fails with an install hint when nginx is missing.
fn nginx_test(prefix: &std::path::Path, config: &std::path::Path) -> std::process::Output {
    Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("cannot run nginx ({e}): install it with `apt-get install -y nginx`"))
}

#[test]
fn the_compose_balancer_config_passes_nginx_t() {
    // The compose config as nginx would load it, with the compose hosts as loopback addresses
    // (nginx resolves upstream names while testing) and the includes at their place in the repo.
    let dir = std::env::temp_dir().join(format!("rookery-nginx-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let nginx_dir = repo("deploy/nginx");
    let upstream = std::fs::read_to_string(nginx_dir.join("upstream.conf")).expect("upstream.conf");
    let upstream =
        upstream.replace("node-1:", "127.0.0.1:").replace("node-2:", "127.0.0.2:").replace("node-3:", "127.0.0.3:");
    std::fs::write(dir.join("upstream.conf"), upstream).expect("write upstream");
    let main = std::fs::read_to_string(nginx_dir.join("nginx.conf")).expect("nginx.conf");
    assert!(main.contains("include /etc/nginx/rookery/proxy.conf;") && main.contains("listen 8080;"), "{main}");
    let main = main
        .replace("/etc/nginx/rookery/upstream.conf", &dir.join("upstream.conf").to_string_lossy())
        .replace("/etc/nginx/rookery/", &format!("{}/", nginx_dir.display()))
        .replace("/tmp/nginx.pid", &dir.join("nginx.pid").to_string_lossy());
    std::fs::write(dir.join("nginx.conf"), main).expect("write nginx.conf");
    let output = nginx_test(&dir, &dir.join("nginx.conf"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "nginx -t failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_compose_file_runs_redis_jaeger_three_nodes_and_the_balancer_in_order() {
    let text = std::fs::read_to_string(repo("docker-compose.yml")).expect("docker-compose.yml");
    let mut compose: serde_yaml::Value = serde_yaml::from_str(&text).expect("docker-compose.yml parses");
    compose.apply_merge().expect("merge keys");
    let services = &compose["services"];
    for name in ["redis", "jaeger", "node-1", "node-2", "node-3", "lb"] {
        assert!(services.get(name).is_some(), "service {name} is missing");
    }
    let redis_command = format!("{:?}", services["redis"]["command"]);
    assert!(redis_command.contains("--appendonly") && redis_command.contains("yes"), "AOF on: {redis_command}");
    assert!(services["redis"]["healthcheck"].get("test").is_some());
    let jaeger_ports = format!("{:?}", services["jaeger"]["ports"]);
    for port in ["16686", "4317", "4318"] {
        assert!(jaeger_ports.contains(port), "jaeger port {port}: {jaeger_ports}");
    }
    let mut node_ids = Vec::new();
    for n in 1..=3 {
        let node = &services[format!("node-{n}").as_str()];
        assert_eq!(node["build"].as_str(), Some("."));
        assert_eq!(node["depends_on"]["redis"]["condition"].as_str(), Some("service_healthy"));
        assert_eq!(
            format!("{:?}", node["healthcheck"]["test"]),
            format!(
                "{:?}",
                serde_yaml::from_str::<serde_yaml::Value>(r#"["CMD", "/rookery", "healthcheck"]"#).expect("yaml")
            )
        );
        let env = &node["environment"];
        assert_eq!(env["ROOKERY_REDIS_URL"].as_str(), Some("redis://redis:6379"));
        assert_eq!(env["OTEL_EXPORTER_OTLP_ENDPOINT"].as_str(), Some("http://jaeger:4318"));
        node_ids.push(env["ROOKERY_NODE_ID"].as_str().unwrap_or_default().to_owned());
        assert_eq!(
            services["lb"]["depends_on"][format!("node-{n}").as_str()]["condition"].as_str(),
            Some("service_healthy")
        );
    }
    let distinct: std::collections::HashSet<&String> = node_ids.iter().collect();
    assert_eq!(distinct.len(), 3, "distinct node ids: {node_ids:?}");
    // Every file the compose file points at exists.
    assert!(repo("Dockerfile").is_file() && repo(".dockerignore").is_file());
    for volume in services["lb"]["volumes"].as_sequence().expect("lb volumes") {
        let host = volume.as_str().and_then(|v| v.split(':').next()).expect("host path");
        assert!(repo(host).exists(), "{host} is mounted but missing");
    }
    for file in ["nginx.conf", "http.conf", "proxy.conf", "upstream.conf"] {
        assert!(repo("deploy/nginx").join(file).is_file(), "deploy/nginx/{file}");
    }
    assert_eq!(
        format!("{:?}", services["lb"]["ports"]),
        format!("{:?}", serde_yaml::from_str::<serde_yaml::Value>(r#"["8080:8080"]"#).expect("yaml"))
    );
}

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

#[actix_web::test]
async fn the_local_cluster_balances_clients_over_nodes_and_they_chat() {
    use std::io::BufRead;

    use crate::helpers::Client;

    let (lb, base, redis) = (free_port_block(), free_port_block(), free_port_block());
    let mut child = Command::new(repo("scripts/local-cluster.sh"))
        .env("LB_PORT", lb.to_string())
        .env("NODE_BASE_PORT", base.to_string())
        .env("REDIS_PORT", redis.to_string())
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
    lines.recv_timeout(std::time::Duration::from_secs(30)).expect("the local cluster became ready");

    let url = format!("ws://127.0.0.1:{lb}/ws");
    let mut alice = Client::connect(&format!("{url}?user=alice")).await;
    let mut bob = Client::connect(&format!("{url}?user=bob")).await;
    assert_ne!(alice.welcome["node"], bob.welcome["node"], "round-robin put them on different nodes");
    alice.join("lobby").await;
    bob.join("lobby").await;
    let id = alice.say("lobby", "through the balancer").await;
    let (message, _) = bob.recv_until("message").await;
    assert_eq!(message["id"].as_str(), Some(id.as_str()));
    drop(cluster);
}
