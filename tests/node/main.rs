//! Integration tests: real nodes on free ports, driven by real WebSocket and HTTP clients.

mod helpers;

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
mod failover;
mod kubernetes;
mod limits;
mod node_process;
mod protocol;
mod redis_server;
mod redis_store;
mod traces;
mod websocket;
