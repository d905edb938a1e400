//! The node's HTTP surface besides the WebSocket upgrade: health and readiness, the server API,
//! Prometheus metrics and the embedded chat page and its scripts. [`routes`] wires every path; `/ws` here only
//! refuses plain HTTP requests, as upgrades go to `ws::upgrade_service`.

mod api;
mod error;
mod health;
mod metrics;
mod page;
mod pending;

use actix_web::{middleware::from_fn, web};

pub use error::ApiError;
pub use pending::{ConnHandle, GuardedStream, PendingRequests, track as track_pending};

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
                    .service(
                        web::resource("/rooms/{room}/messages")
                            .route(web::post().to(api::post_message))
                            .route(web::get().to(api::list_messages))
                            .default_service(web::to(|| api::method_not_allowed("GET, POST"))),
                    )
                    .service(
                        web::resource("/rooms/{room}/members")
                            .route(web::get().to(api::list_members))
                            .default_service(web::to(|| api::method_not_allowed("GET"))),
                    ),
            );
        if echo_endpoint {
            cfg.route("/ws/echo", web::get().to(ws::not_upgraded));
        }
        cfg.default_service(web::to(|| async { Err::<actix_web::HttpResponse, _>(ApiError::not_found()) }));
    }
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 9110).
pub fn bearer_token(headers: &actix_web::http::header::HeaderMap) -> Option<&str> {
    let value = headers.get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The node, as every handler receives it.
pub type NodeData = web::Data<Node>;
