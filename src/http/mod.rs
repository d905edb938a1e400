//! The node's HTTP surface besides the WebSocket upgrade: health and readiness, the server API,
//! Prometheus metrics and the embedded chat page and its scripts. [`routes`] wires every path; `/ws` here only
//! refuses plain HTTP requests, as upgrades go to `ws::upgrade_service`.

mod api;
mod error;
mod health;
mod metrics;
mod page;

use actix_web::{middleware::from_fn, web};

pub use error::ApiError;

use crate::{node::Node, ws};

/// Registers every route of a node.
pub fn routes(echo_endpoint: bool) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.route("/", web::get().to(page::index))
            .route("/js/{path:.+}", web::get().to(page::script))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/metrics", web::get().to(metrics::metrics))
            .route("/ws", web::get().to(ws::not_upgraded))
            .service(
                web::scope("/api/v1")
                    .wrap(from_fn(api::count_errors))
                    .route("/rooms/{room}/messages", web::post().to(api::post_message))
                    .route("/rooms/{room}/messages", web::get().to(api::list_messages))
                    .route("/rooms/{room}/members", web::get().to(api::list_members)),
            );
        if echo_endpoint {
            cfg.route("/ws/echo", web::get().to(ws::not_upgraded));
        }
        cfg.default_service(web::to(|| async { Err::<actix_web::HttpResponse, _>(ApiError::not_found()) }));
    }
}

/// The node, as every handler receives it.
pub type NodeData = web::Data<Node>;
