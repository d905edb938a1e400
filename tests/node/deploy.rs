//! What running rookery for real relies on: the `healthcheck` subcommand the container image
//! uses, the load balancer configs (checked with `nginx -t`), and the compose file with its
//! `cluster` profile. The local cluster script has `local_cluster.rs`.

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

pub fn repo(path: &str) -> std::path::PathBuf {
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

/// `nginx -t` on a compose balancer config (`main` in deploy/nginx, including `upstream` there),
/// as nginx would load it, with the compose hosts `nodes` as loopback addresses (nginx resolves
/// upstream names while testing) and the includes at their place in the repo.
fn check_compose_balancer(main: &str, upstream: &str, nodes: &[&str]) {
    let dir = std::env::temp_dir().join(format!("rookery-nginx-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let nginx_dir = repo("deploy/nginx");
    let mut upstream_text = std::fs::read_to_string(nginx_dir.join(upstream)).expect(upstream);
    for (n, node) in nodes.iter().enumerate() {
        assert!(upstream_text.contains(&format!("server {node}:8080;")), "{upstream} balances {node}");
        upstream_text = upstream_text.replace(&format!("{node}:"), &format!("127.0.0.{}:", n + 1));
    }
    std::fs::write(dir.join(upstream), upstream_text).expect("write upstream");
    let main_text = std::fs::read_to_string(nginx_dir.join(main)).expect(main);
    assert!(main_text.contains("include /etc/nginx/rookery/proxy.conf;") && main_text.contains("listen 8080;"));
    assert!(main_text.contains(&format!("include /etc/nginx/rookery/{upstream};")), "{main} includes {upstream}");
    let main_text = main_text
        .replace(&format!("/etc/nginx/rookery/{upstream}"), &dir.join(upstream).to_string_lossy())
        .replace("/etc/nginx/rookery/", &format!("{}/", nginx_dir.display()))
        .replace("/tmp/nginx.pid", &dir.join("nginx.pid").to_string_lossy());
    std::fs::write(dir.join(main), main_text).expect("write the main config");
    let output = nginx_test(&dir, &dir.join(main));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "nginx -t failed on {main}:\n{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_compose_balancer_config_passes_nginx_t() {
    check_compose_balancer("nginx.conf", "upstream.conf", &["node-1", "node-2", "node-3"]);
}

#[test]
fn the_compose_cluster_profile_balancer_config_passes_nginx_t() {
    check_compose_balancer(
        "cluster-nginx.conf",
        "cluster-upstream.conf",
        &["cluster-node-1", "cluster-node-2", "cluster-node-3"],
    );
}

/// docker-compose.yml with its merge keys applied, as compose reads it.
fn compose_file() -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo("docker-compose.yml")).expect("docker-compose.yml");
    let mut compose: serde_yaml::Value = serde_yaml::from_str(&text).expect("docker-compose.yml parses");
    compose.apply_merge().expect("merge keys");
    compose
}

fn yaml(text: &str) -> serde_yaml::Value {
    serde_yaml::from_str(text).expect("yaml")
}

/// A service's command as strings.
fn command_of(service: &serde_yaml::Value) -> Vec<String> {
    service["command"]
        .as_sequence()
        .expect("a command list")
        .iter()
        .map(|word| word.as_str().expect("a string").to_owned())
        .collect()
}

/// The word after `flag` in `command`.
fn flag_value<'a>(command: &'a [String], flag: &str) -> Option<&'a str> {
    command.iter().position(|word| word == flag).and_then(|i| command.get(i + 1)).map(String::as_str)
}

#[test]
fn the_compose_file_runs_redis_jaeger_three_nodes_and_the_balancer_in_order() {
    let compose = compose_file();
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

const DEFAULT_SERVICES: [&str; 6] = ["redis", "jaeger", "node-1", "node-2", "node-3", "lb"];

#[test]
fn the_compose_cluster_profile_runs_a_redis_cluster_and_nodes_on_it_and_leaves_the_default_alone() {
    let compose = compose_file();
    let services = compose["services"].as_mapping().expect("services");
    let named = |name: &str| &compose["services"][name];
    let cluster_profile = yaml("[cluster]");

    // `docker compose up` starts the services without a profile: the same six as ever, and
    // nothing of the Redis Cluster reaches them.
    let mut default: Vec<&str> = services
        .iter()
        .filter(|(_, service)| service.get("profiles").is_none())
        .map(|(name, _)| name.as_str().expect("a service name"))
        .collect();
    default.sort_unstable();
    let mut expected = DEFAULT_SERVICES.to_vec();
    expected.sort_unstable();
    assert_eq!(default, expected, "the services `docker compose up` starts");
    for (name, service) in services {
        if service.get("profiles").is_some() {
            assert_eq!(service["profiles"], cluster_profile, "{name:?} is in the cluster profile only");
        }
    }
    assert_eq!(flag_value(&command_of(named("redis")), "--cluster-enabled"), None, "the default Redis is one server");
    for n in 1..=3 {
        let env = &named(&format!("node-{n}"))["environment"];
        assert!(env.get("ROOKERY_REDIS_CLUSTER_NODES").is_none(), "node-{n} uses the one Redis");
        assert!(env.get("ROOKERY_BUS_SHARDS").is_none(), "node-{n} keeps the default shards");
        assert_eq!(named(&format!("node-{n}"))["depends_on"].as_mapping().map(|d| d.len()), Some(2));
    }
    assert_eq!(
        format!("{:?}", named("lb")["command"]),
        format!("{:?}", yaml(r#"["nginx", "-c", "/etc/nginx/rookery/nginx.conf", "-g", "daemon off;"]"#))
    );

    // Six servers in cluster mode, each announcing its own service name to clients, with its
    // own volume for its data and nodes.conf.
    let cluster_mode: Vec<&str> = services
        .iter()
        .filter(|(_, service)| {
            service.get("command").is_some_and(|_| flag_value(&command_of(service), "--cluster-enabled") == Some("yes"))
        })
        .map(|(name, _)| name.as_str().expect("a service name"))
        .collect();
    let redis_names: Vec<String> = (1..=6).map(|n| format!("redis-cluster-{n}")).collect();
    assert_eq!(cluster_mode, redis_names, "the services in cluster mode");
    let mut volumes = std::collections::HashSet::new();
    for name in &redis_names {
        let service = named(name);
        assert_eq!(service["image"].as_str(), Some("redis:7"), "{name}");
        assert_eq!(service["profiles"], cluster_profile, "{name}");
        let command = command_of(service);
        assert_eq!(command.first().map(String::as_str), Some("redis-server"), "{name}");
        assert_eq!(flag_value(&command, "--cluster-config-file"), Some("nodes.conf"), "{name}");
        assert_eq!(flag_value(&command, "--appendonly"), Some("yes"), "{name}");
        assert_eq!(flag_value(&command, "--cluster-announce-hostname"), Some(name.as_str()), "{name}");
        assert_eq!(flag_value(&command, "--cluster-preferred-endpoint-type"), Some("hostname"), "{name}");
        assert_eq!(
            format!("{:?}", service["healthcheck"]["test"]),
            format!("{:?}", yaml(r#"["CMD", "redis-cli", "ping"]"#)),
            "{name}"
        );
        let volume = service["volumes"][0].as_str().expect("a volume");
        let (volume, mount) = volume.split_once(':').expect("volume:path");
        assert_eq!(mount, "/data", "{name}");
        assert!(compose["volumes"].get(volume).is_some(), "{name}'s volume {volume} is declared");
        assert!(volumes.insert(volume.to_owned()), "{name} has a volume of its own");
    }

    // The one-shot service makes them a cluster once every one is healthy, with the script the
    // local cluster uses too.
    let init = named("redis-cluster-init");
    assert_eq!(init["image"].as_str(), Some("redis:7"));
    assert_eq!(init["restart"].as_str(), Some("no"), "a one-shot");
    let command = command_of(init);
    let mount = init["volumes"][0].as_str().expect("the script's mount");
    let (host, inside) = mount.trim_end_matches(":ro").split_once(':').expect("host:container");
    assert!(repo(host).join("create.sh").is_file(), "{host}/create.sh is mounted");
    assert_eq!(command[..2], ["sh".to_owned(), format!("{inside}/create.sh")], "{command:?}");
    let seeds: Vec<String> = redis_names.iter().map(|name| format!("{name}:6379")).collect();
    assert_eq!(command[2..], seeds[..], "every server goes into the cluster");
    for name in &redis_names {
        assert_eq!(init["depends_on"][name.as_str()]["condition"].as_str(), Some("service_healthy"), "{name}");
    }

    // Three nodes on the cluster: every server a seed, no ROOKERY_REDIS_URL, and otherwise the
    // settings of the default nodes.
    let urls: Vec<String> = redis_names.iter().map(|name| format!("redis://{name}:6379")).collect();
    let default_env = named("node-1")["environment"].as_mapping().expect("node-1's environment");
    let mut node_ids = std::collections::HashSet::new();
    for n in 1..=3 {
        let name = format!("cluster-node-{n}");
        let node = named(&name);
        assert_eq!(node["profiles"], cluster_profile, "{name}");
        assert_eq!(node["build"].as_str(), Some("."), "{name}");
        assert_eq!(node["healthcheck"], named("node-1")["healthcheck"], "{name}");
        assert_eq!(
            node["depends_on"]["redis-cluster-init"]["condition"].as_str(),
            Some("service_completed_successfully"),
            "{name} starts once the cluster is made"
        );
        assert!(node["depends_on"].get("redis").is_none(), "{name} does not wait for the default Redis");
        let env = node["environment"].as_mapping().expect("environment");
        assert!(env.get("ROOKERY_REDIS_URL").is_none(), "{name}: a node given both refuses to start");
        assert_eq!(
            env["ROOKERY_REDIS_CLUSTER_NODES"].as_str().map(|v| v.split(',').collect::<Vec<_>>()),
            Some(urls.iter().map(String::as_str).collect()),
            "{name}"
        );
        assert_eq!(env["ROOKERY_BUS_SHARDS"].as_str(), Some("16"), "{name}");
        for (key, value) in default_env {
            let key = key.as_str().expect("a variable name");
            if !["ROOKERY_REDIS_URL", "ROOKERY_NODE_ID"].contains(&key) {
                assert_eq!(env.get(key), Some(value), "{name}: {key} as on the default nodes");
            }
        }
        assert!(node_ids.insert(env["ROOKERY_NODE_ID"].as_str().expect("ROOKERY_NODE_ID").to_owned()));
        assert_eq!(
            named("cluster-lb")["depends_on"][name.as_str()]["condition"].as_str(),
            Some("service_healthy"),
            "{name}"
        );
    }
    assert!(node_ids.iter().all(|id| !["node-1", "node-2", "node-3"].contains(&id.as_str())), "{node_ids:?}");

    // Its balancer: the cluster nginx config, on a host port of its own.
    let lb = named("cluster-lb");
    assert_eq!(flag_value(&command_of(lb), "-c"), Some("/etc/nginx/rookery/cluster-nginx.conf"));
    assert_eq!(lb["volumes"], named("lb")["volumes"]);
    assert_eq!(format!("{:?}", lb["ports"]), format!("{:?}", yaml(r#"["8090:8080"]"#)));
}
