//! rookery: a real-time chat/room server that scales out horizontally behind Redis.
//!
//! A frame comes in through `ws` (handshake, connection machinery, the `Session` actor), is
//! parsed by `protocol`, handled by the session, published through `engine`, fanned out by the
//! `Room` actors of `rooms`, and written back by each receiving session.
//!
//! # Layout
//! - `domain`: validated names, ids, messages and presence values.
//! - `protocol`: wire protocol v1, pure (no I/O): client frame parsing, server frame encoding,
//!   error and close codes.
//! - `engine`: the cluster seam (`Broker`, `PresenceStore`, `Engine`), the in-memory engine and
//!   the Redis engine (the contract every engine passes is test code: `tests/node/contract.rs`).
//! - `rooms`: the room directory the engine delivers through, and each worker thread's rooms.
//! - `ws`: `GET /ws` admission and upgrade, the `Session` actor and its commands, the bounded
//!   outbound queue, frame guard and reader, and the conformance echo endpoint.
//! - `http`: health, readiness, the server API, metrics, the chat page, JSON errors.
//! - `auth`: anonymous and JWT identities and room grants.
//! - `telemetry`: logs, traces and Prometheus metrics.
//! - `healthcheck`: `rookery healthcheck`, the container health probe.
//! - `chat`: `rookery chat`, the terminal client.
//! - `cli`: the `rookery` command line.
//! - `settings`, `node`, `startup`, `shutdown`: configuration, shared node state, building,
//!   running and stopping.

pub mod auth;
pub mod chat;
pub mod cli;
pub mod domain;
pub mod engine;
pub mod healthcheck;
pub mod http;
pub mod node;
pub mod protocol;
pub mod rooms;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod ws;
