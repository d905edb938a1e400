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
