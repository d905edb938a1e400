//! WebSocket connections: admission (`route`) and the upgrade on the TCP stream (`upgrade`),
//! the chat [`Session`] actor, its commands and its `inbox` (what its rooms deliver), and the
//! connection machinery every socket shares (`connection`, `driver`, `race`, `socket`,
//! `reader`, `frame_guard`, `outbound`, and the node-wide `budget` on what queues hold), which
//! the conformance echo endpoint (`echo`) also runs on.
//!
//! The upgrade takes the TCP stream from actix-http's HTTP/1 dispatcher and uses actix-http's
//! WebSocket handshake and codec, the layer actix-ws is built on: the session's bounded queue is
//! written by the connection's own driver, with no channel, task or dispatcher buffer in between
//! (see `BENCHMARKS.md` for what that saved per delivery and per idle connection).

pub mod budget;
mod commands;
mod connection;
mod driver;
mod echo;
mod frame_guard;
mod inbox;
mod limits;
mod outbound;
mod race;
mod reader;
mod replay;
mod route;
mod session;
mod session_trace;
mod socket;
mod upgrade;

pub use route::not_upgraded;
pub use session::Session;
pub use upgrade::service as upgrade_service;
