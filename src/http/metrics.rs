//! `GET /metrics`: the Prometheus text exposition of the node's metrics.

use actix_web::HttpResponse;

use super::NodeData;

pub async fn metrics(node: NodeData) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(node.metrics.render())
}
