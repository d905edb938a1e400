//! `GET /`: the chat page, embedded in the binary (no build step).

use actix_web::HttpResponse;

const INDEX: &str = include_str!("../../static/index.html");

pub async fn index() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(INDEX)
}
