//! Admission: JWT (HS256 and ES256), room grants, token expiry, origins, the connection limit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http::HeaderValue};

use crate::helpers::{Client, Endpoint, TestApp, spawn_app};

const SECRET: &str = "test-secret-of-at-least-32-bytes";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn hs256(claims: Value) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("token")
}

async fn jwt_app() -> TestApp {
    spawn_app(&[("ROOKERY_AUTH", "jwt"), ("ROOKERY_JWT_SECRET", SECRET), ("ROOKERY_JWT_LEEWAY_SECS", "0")]).await
}

/// Connects and expects the handshake to be refused; returns the status and JSON body.
async fn refused(request: tungstenite::handshake::client::Request) -> (u16, Value) {
    match Client::connect_request(request).await {
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (response.status().as_u16(), serde_json::from_slice(&body).expect("json error body"))
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
}

fn request(url: &str) -> tungstenite::handshake::client::Request {
    url.into_client_request().expect("request")
}

#[actix_web::test]
async fn jwt_identifies_the_user_from_header_or_query() {
    let app = jwt_app().await;
    let token = hs256(json!({"sub":"alice","exp":now() + 600}));
    let mut with_header = request(&app.ws_url("?user=mallory"));
    with_header
        .headers_mut()
        .insert("Authorization", HeaderValue::from_str(&format!("Bearer {token}")).expect("header"));
    let client = Client::connect_request(with_header).await.expect("accepted");
    assert_eq!(client.welcome["user"], "alice", "the token, not ?user=, names the user");
    let client = Client::connect(&app.ws_url(&format!("?token={token}"))).await;
    assert_eq!(client.welcome["user"], "alice");
}

#[actix_web::test]
async fn missing_invalid_and_expired_tokens_get_401_without_upgrade() {
    let app = jwt_app().await;
    let (status, body) = refused(request(&app.ws_url(""))).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    assert!(body["message"].as_str().is_some_and(|m| m.contains("Bearer")), "{body}");

    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub":"alice","exp":now() + 600}),
        &EncodingKey::from_secret(b"other"),
    )
    .expect("token");
    let (status, body) = refused(request(&app.ws_url(&format!("?token={forged}")))).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));

    let expired = hs256(json!({"sub":"alice","exp":now() - 3600}));
    let (status, body) = refused(request(&app.ws_url(&format!("?token={expired}")))).await;
    assert_eq!(status, 401);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("expired")), "{body}");

    let no_sub = hs256(json!({"exp":now() + 600}));
    assert_eq!(refused(request(&app.ws_url(&format!("?token={no_sub}")))).await.0, 401);
    let metrics = app.node.metrics.render();
    assert!(metrics.contains("rookery_connections_opened_total{result=\"unauthorized\"} 4"), "{metrics}");
}

#[actix_web::test]
async fn rooms_claim_limits_joins_and_history() {
    let app = jwt_app().await;
    let token = hs256(json!({"sub":"alice","exp":now() + 600,"rooms":["lobby","team-*"]}));
    let mut client = Client::connect(&app.ws_url(&format!("?token={token}"))).await;
    client.join("lobby").await;
    client.join("team-red").await;
    let denied = client.request(json!({"type":"join","room":"secret"})).await;
    assert_eq!((denied["type"].as_str(), denied["code"].as_str()), (Some("error"), Some("forbidden")));
    let denied = client.request(json!({"type":"history","room":"secret"})).await;
    assert_eq!(denied["code"], "forbidden");
    let denied = client.request(json!({"type":"send","room":"secret","body":"x"})).await;
    assert_eq!(denied["code"], "not_joined");
}

#[actix_web::test]
async fn an_expiring_token_closes_the_session_with_1008() {
    let app = jwt_app().await;
    let token = hs256(json!({"sub":"alice","exp":now() + 2}));
    let mut client = Client::connect(&app.ws_url(&format!("?token={token}"))).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!((code, reason.as_str()), (1008, "token expired"));
}

#[actix_web::test]
async fn es256_tokens_verify_with_a_public_key_file() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let public = format!("{fixtures}/es256-public.pem");
    let app = spawn_app(&[("ROOKERY_AUTH", "jwt"), ("ROOKERY_JWT_PUBLIC_KEY_FILE", &public)]).await;
    let private = std::fs::read(format!("{fixtures}/es256-private.pem")).expect("fixture");
    let key = EncodingKey::from_ec_pem(&private).expect("ec key");
    let token = encode(&Header::new(Algorithm::ES256), &json!({"sub":"erin","exp":now() + 600}), &key).expect("token");
    let client = Client::connect(&app.ws_url(&format!("?token={token}"))).await;
    assert_eq!(client.welcome["user"], "erin");
    let hs = hs256(json!({"sub":"erin","exp":now() + 600}));
    assert_eq!(refused(request(&app.ws_url(&format!("?token={hs}")))).await.0, 401, "only ES256 is accepted");
}

#[actix_web::test]
async fn origins_outside_the_allowed_list_get_403() {
    let app = spawn_app(&[("ROOKERY_ALLOWED_ORIGINS", "https://chat.example.com,http://localhost:8080")]).await;
    let mut bad = request(&app.ws_url("?user=a"));
    bad.headers_mut().insert("Origin", HeaderValue::from_static("https://evil.example.com"));
    let (status, body) = refused(bad).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden_origin")));
    let mut good = request(&app.ws_url("?user=a"));
    good.headers_mut().insert("Origin", HeaderValue::from_static("https://Chat.example.com"));
    Client::connect_request(good).await.expect("allowed origin");
    Client::connect(&app.ws_url("?user=b")).await; // no Origin: not a browser
}

#[actix_web::test]
async fn connections_over_the_limit_get_503_until_one_closes() {
    let app = spawn_app(&[("ROOKERY_MAX_CONNECTIONS", "2")]).await;
    let first = app.client("a").await;
    let _second = app.client("b").await;
    let (status, body) = refused(request(&app.ws_url("?user=c"))).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("over_limit")));
    drop(first);
    app.eventually("a slot to free up", |node| node.connection_count() < 2).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.client("c").await;
}

#[actix_web::test]
async fn a_never_expiring_exp_and_a_future_nbf_get_401() {
    // The default leeway (30 s), which `exp` plus leeway overflowed with.
    let app = spawn_app(&[("ROOKERY_AUTH", "jwt"), ("ROOKERY_JWT_SECRET", SECRET)]).await;
    for claims in [
        json!({"sub":"alice","exp":u64::MAX}),
        json!({"sub":"alice","exp":(1u64 << 63) - 30}),
        json!({"sub":"alice","exp":now() + 600,"nbf":now() + 86_400}),
    ] {
        let (status, body) = refused(request(&app.ws_url(&format!("?token={}", hs256(claims.clone()))))).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "{claims}");
    }
}
