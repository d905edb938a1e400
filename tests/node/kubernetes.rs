//! The Kubernetes manifests: every overlay renders with kustomize (`kubectl kustomize`), every
//! object validates against the Kubernetes schemas in strict mode (`kubernetes-validate`, from
//! PyPI), and
//! the Deployment keeps the promises the drain depends on.

use std::{path::Path, process::Command};

use serde::Deserialize;
use serde_yaml::Value;

/// Renders an overlay; fails with an install hint when kubectl is missing.
fn render(overlay: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s/overlays").join(overlay);
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl ({e}): install it (apt-get install -y kubectl)"));
    assert!(output.status.success(), "kustomize {overlay}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn validate(overlay: &str, rendered: &str) {
    let file = std::env::temp_dir().join(format!("rookery-k8s-{overlay}-{}.yaml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, rendered).expect("write the rendered overlay");
    let output = Command::new("python3")
        .args(["-m", "kubernetes_validate"])
        .arg("--strict")
        .arg("--quiet")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubernetes-validate ({e}): pip install kubernetes-validate"));
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "{overlay} does not validate:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn objects(rendered: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(rendered).map(|doc| Value::deserialize(doc).expect("a YAML document")).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn check_rookery_deployment(objects: &[Value]) {
    let deployment = find(objects, "Deployment", "rookery");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &deployment["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/scrape"], "true");
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert!(spec["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname");
    let container = &spec["containers"][0];
    let env = container["env"].as_sequence().expect("env");
    let node_id = env.iter().find(|e| e["name"] == "ROOKERY_NODE_ID").expect("ROOKERY_NODE_ID");
    assert_eq!(node_id["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name", "the node id is the pod name");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["startupProbe"]["httpGet"]["path"], "/healthz");
    let security = &container["securityContext"];
    assert_eq!(
        (&security["readOnlyRootFilesystem"], &security["allowPrivilegeEscalation"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    // The pod gets to finish its drain: preStop + drain delay + shutdown grace fit in the period.
    let config = find(objects, "ConfigMap", objects_config_name(objects));
    let ms =
        |key: &str| config["data"][key].as_str().and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{key}"));
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().expect("preStop sleep");
    let period = spec["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    assert!(
        pre_stop * 1000 + ms("ROOKERY_DRAIN_DELAY_MS") + ms("ROOKERY_SHUTDOWN_GRACE_MS") < period * 1000,
        "drain fits in {period} s"
    );
}

/// The rendered ConfigMap's name (kustomize may add a hash suffix).
fn objects_config_name(objects: &[Value]) -> &str {
    objects
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .find(|name| name.starts_with("rookery-config"))
        .expect("the rookery ConfigMap")
}

#[test]
fn the_dev_overlay_renders_validates_and_brings_redis_and_jaeger() {
    let rendered = render("dev");
    validate("dev", &rendered);
    let objects = objects(&rendered);
    check_rookery_deployment(&objects);
    let redis = find(&objects, "StatefulSet", "redis");
    assert!(format!("{:?}", redis["spec"]["template"]["spec"]["containers"][0]["args"]).contains("--appendonly"));
    assert!(redis["spec"]["volumeClaimTemplates"].as_sequence().is_some_and(|claims| !claims.is_empty()));
    let jaeger = find(&objects, "Service", "jaeger");
    let ports = format!("{:?}", jaeger["spec"]["ports"]);
    assert!(ports.contains("4318") && ports.contains("4317") && ports.contains("16686"), "{ports}");
    for kind in ["Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget"] {
        find(&objects, kind, "rookery");
    }
}

#[test]
fn the_production_overlay_renders_validates_and_uses_tls_redis_and_sampling() {
    let rendered = render("production");
    validate("production", &rendered);
    let objects = objects(&rendered);
    check_rookery_deployment(&objects);
    let config = find(&objects, "ConfigMap", objects_config_name(&objects));
    assert!(config["data"]["ROOKERY_REDIS_URL"].as_str().is_some_and(|url| url.starts_with("rediss://")));
    assert_eq!(config["data"]["OTEL_TRACES_SAMPLER"], "parentbased_traceidratio");
    let image = &find(&objects, "Deployment", "rookery")["spec"]["template"]["spec"]["containers"][0]["image"];
    assert_eq!(image, "registry.example.com/rookery:0.1.0");
    assert!(!rendered.contains("kind: Secret"), "production commits no secret");
    assert!(objects.iter().all(|o| o["kind"] != "StatefulSet"), "no in-cluster Redis in production");
}

#[test]
fn the_redis_cluster_overlay_renders_validates_and_takes_the_cluster_from_the_secret() {
    let rendered = render("redis-cluster");
    validate("redis-cluster", &rendered);
    let objects = objects(&rendered);
    check_rookery_deployment(&objects);
    // Production's settings, with the Redis Cluster in place of the one Redis endpoint: a node
    // given both refuses to start.
    let config = find(&objects, "ConfigMap", objects_config_name(&objects));
    assert!(config["data"].get("ROOKERY_REDIS_URL").is_none(), "no single Redis endpoint: {config:?}");
    assert!(!rendered.contains("ROOKERY_REDIS_URL"), "ROOKERY_REDIS_URL is set nowhere");
    assert_eq!(config["data"]["ROOKERY_BUS_SHARDS"], "16", "the shards are set explicitly");
    assert_eq!(config["data"]["OTEL_TRACES_SAMPLER"], "parentbased_traceidratio");
    let container = &find(&objects, "Deployment", "rookery")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example.com/rookery:0.1.0");
    // The seed URLs carry the password: they come from the Secret, by name, so a Secret without
    // them stops the pods instead of leaving each node alone on the in-memory engine.
    let env = container["env"].as_sequence().expect("env");
    let nodes = env.iter().find(|e| e["name"] == "ROOKERY_REDIS_CLUSTER_NODES").expect("ROOKERY_REDIS_CLUSTER_NODES");
    assert!(nodes.get("value").is_none(), "no seed URL is committed");
    let secret = &nodes["valueFrom"]["secretKeyRef"];
    assert_eq!(
        (&secret["name"], &secret["key"]),
        (&Value::from("rookery-secrets"), &Value::from("ROOKERY_REDIS_CLUSTER_NODES"))
    );
    assert_ne!(secret["optional"].as_bool(), Some(true), "the key is required");
    assert!(!rendered.contains("kind: Secret"), "the Secret is created out of band");
    assert!(objects.iter().all(|o| o["kind"] != "StatefulSet"), "the Redis Cluster is managed elsewhere");
}
