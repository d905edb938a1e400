//! Integration tests: real nodes on free ports, driven by real WebSocket and HTTP clients.

// A test fails by panicking: an unexpected error here is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod idempotency;

mod api;
mod auth;
mod bench;
mod chat;
mod churn;
mod cluster;
mod command_line;
mod contract;
mod deploy;
mod drain;
mod engine_contract;
mod engine_faults;
mod epoch;
mod failover;
mod http_conformance;
mod http_guard;
mod kubernetes;
mod limits;
mod local_cluster;
mod node_process;
mod on_redis_cluster;
mod on_redis_sentinel;
mod own_messages;
mod protocol;
mod publish_pacing;
mod readme;
mod redis_cluster;
mod redis_sentinel;
mod redis_server;
mod redis_store;
mod replication;
mod routing;
mod traces;
mod websocket;
