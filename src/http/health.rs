//! `GET /healthz` (the process serves) and `GET /readyz` (the engine works; send traffic here).

use actix_web::HttpResponse;
use serde_json::json;

use super::NodeData;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(node: NodeData) -> HttpResponse {
    if node.shutdown.is_draining() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "draining",
            "node": node.settings.node_id,
            "reason": "the node is shutting down",
        }));
    }
    match node.engine.check_ready().await {
        Ok(()) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "node": node.settings.node_id,
            "engine": node.engine.kind(),
        })),
        Err(error) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "node": node.settings.node_id,
            "reason": error.to_string(),
        })),
    }
}
