//! The WebSocket upgrade, on the TCP stream itself.
//!
//! actix-http's HTTP/1 dispatcher hands every request that asks for a WebSocket
//! (`Upgrade: websocket`) to this service together with its TCP stream, instead of to the
//! actix-web app. The service admits it (`route`), answers 101 or an HTTP error, starts the
//! connection's actor, and then drives the connection (`driver`) as the dispatcher's last
//! future. The dispatcher's own read and write buffers (8 KiB each) are dropped here: an idle
//! connection keeps neither (see `socket`).

use std::{convert::Infallible, time::Duration};

use actix::Actor;
use actix_codec::{Encoder, Framed, FramedParts};
use actix_http::{
    ConnectionType, Request, Response,
    body::{BodySize, MessageBody},
    h1,
};
use actix_web::{
    ResponseError,
    dev::{ServiceFactory, fn_service},
    web::{self, Bytes, BytesMut},
};
use tokio::net::TcpStream;

use super::{
    connection::Connection,
    driver::{Timers, Upgraded, drive},
    echo::EchoSession,
    outbound::Outbound,
    route::{self, Admission, Admitted},
    session::{Session, SessionStart},
    socket,
};
use crate::{
    http::{ApiError, GuardedStream},
    node::Node,
    rooms::LocalMembers,
};

/// How long a refused handshake waits for the client to close after reading the answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// What the dispatcher hands over: the request and its connection.
pub type UpgradeRequest = (Request, Framed<GuardedStream, h1::Codec>);

/// The upgrade service of one HTTP worker of a node; `worker` is that worker thread's local
/// room members, which its sessions join rooms in.
pub fn service(
    node: web::Data<Node>,
    worker: LocalMembers,
) -> impl ServiceFactory<UpgradeRequest, Config = (), Response = (), Error = Infallible, InitError = ()> {
    fn_service(move |(request, framed): UpgradeRequest| {
        let (node, worker) = (node.clone(), worker.clone());
        async move {
            upgrade(request, framed, node, worker).await;
            Ok(())
        }
    })
}

async fn upgrade(
    request: Request,
    framed: Framed<GuardedStream, h1::Codec>,
    node: web::Data<Node>,
    worker: LocalMembers,
) {
    let Some((switched, admitted)) = handshake(request, framed, &node).await else { return };
    let settings = &node.settings;
    let share = node.outbound_budget.join();
    let (outbound, body) = Outbound::new(settings.outbound_queue_frames, settings.outbound_queue_bytes, share);
    let connection = Upgraded {
        stream: switched.stream,
        early: switched.early,
        max_frame_bytes: settings.max_frame_bytes,
        outbound: body,
        timers: Timers { heartbeat: settings.heartbeat, drain: Box::pin(node.shutdown.close_time()) },
        metrics: node.metrics.clone(),
    };
    let half = Connection::new(outbound, &node);
    match admitted {
        Admitted::Chat { session, identity, slot, handshake } => {
            let start = SessionStart { id: session, identity, slot, handshake, worker };
            let actor = Session::start(start, node.clone(), half);
            node.metrics.connection_opened("ok");
            drive(connection, actor).await;
        }
        Admitted::Echo { slot } => {
            let actor = EchoSession::new(half, slot).start();
            node.metrics.connection_opened("ok");
            drive(connection, actor).await;
        }
    }
}

/// The stream once the handshake is answered, and what came behind the request.
struct Switched {
    stream: TcpStream,
    early: Bytes,
}

/// Admits the request and answers it: 101, or an error and the end of the connection. The
/// request, the HTTP codec and the dispatcher's buffers are all dropped on return, so a
/// connection keeps none of them.
async fn handshake(
    request: Request,
    framed: Framed<GuardedStream, h1::Codec>,
    node: &Node,
) -> Option<(Switched, Admitted)> {
    let FramedParts { io, mut codec, read_buf, .. } = framed.into_parts();
    // The request is complete: the connection is no longer pending, whatever the answer.
    let stream = io.into_inner();
    // Frames go out as they are written: Nagle's wait for the previous segment's ACK only adds
    // latency to a stream of small frames (BENCHMARKS.md, change 10). Failing to set it is harmless.
    let _ = stream.set_nodelay(true);
    let admission = match request.path() {
        "/ws" => route::admit_chat(request.head(), node),
        "/ws/echo" if node.settings.echo_endpoint => route::admit_echo(request.head(), node),
        _ => Err(ApiError::not_found()),
    };
    let Admission { response, admitted } = match admission {
        Ok(admission) => admission,
        Err(error) => {
            refuse(stream, codec, &error).await;
            return None;
        }
    };
    let mut head = BytesMut::new();
    codec.encode(h1::Message::Item((response, BodySize::None)), &mut head).ok()?;
    socket::write_all(&stream, &head).await.ok()?;
    Some((Switched { stream, early: Bytes::copy_from_slice(&read_buf) }, admitted))
}

/// Answers `error` as the app would (status and JSON body), then closes the connection.
async fn refuse(stream: TcpStream, mut codec: h1::Codec, error: &ApiError) {
    let (mut response, body) = Response::from(error.error_response()).into_parts();
    response.head_mut().set_connection_type(ConnectionType::Close);
    let body = body.try_into_bytes().unwrap_or_default();
    let mut out = BytesMut::new();
    if codec.encode(h1::Message::Item((response, BodySize::Sized(body.len() as u64))), &mut out).is_err() {
        return;
    }
    out.extend_from_slice(&body);
    if socket::write_all(&stream, &out).await.is_ok() {
        socket::close(stream, REFUSAL_LINGER).await;
    }
}
