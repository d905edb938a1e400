//! WebSocket connections: the handshake (`route`), the chat [`Session`] actor and its commands,
//! and the connection machinery every socket shares (`connection`, `reader`, `frame_guard`,
//! `outbound`), which the conformance echo endpoint (`echo`) also runs on.
//!
//! The upgrade uses actix-http's WebSocket handshake and codec directly, the layer actix-ws is
//! built on: the session's bounded queue is itself the response body, with no channel and task
//! in between (see `outbound`, and `BENCHMARKS.md` for what that saved per delivery).

mod commands;
mod connection;
mod echo;
mod frame_guard;
mod limits;
mod outbound;
mod reader;
mod route;
mod session;
mod session_trace;

pub use route::{chat_socket, echo_socket};
pub use session::Session;
