//! Micro-benchmarks of the work a node does per message and per delivery, without the network:
//! encoding a `message` frame, parsing a client `send` frame, and the room fan-out (the engine's
//! hand-off to the room directory, the room actor's one encode, and one actix message to the
//! members' worker thread, across threads as on a node) to members that only count what they get.
//!
//! ```sh
//! cargo bench --bench hot_paths
//! ```
//!
//! The figures that matter are the end-to-end ones in `BENCHMARKS.md`; these isolate one piece
//! each, to see what a change to it does. Each line is the best of five rounds.

use std::{
    hint::black_box,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use actix::{Actor, Arbiter};
use rookery::{
    domain::{Message, MessageId, RoomName, SessionId, UserName, now_ms},
    engine::{BusEvent, Delivery},
    protocol::{encode_message, parse_client_frame},
    rooms::{JoinRoom, LocalMember, LocalMembers, Registry, RoomDirectory, RoomEvent},
    telemetry::Metrics,
};

const ROUNDS: usize = 5;

/// Prints the best time per operation over [`ROUNDS`] rounds of `operations` each.
fn report(name: &str, operations: u64, mut round: impl FnMut() -> Duration) {
    let best = (0..ROUNDS).map(|_| round()).min().unwrap_or_default();
    println!("{name:<58} {:>9.1} ns", best.as_nanos() as f64 / operations as f64);
}

fn message(room: &RoomName, seq: u64, body: &str) -> Message {
    Message {
        room: room.clone(),
        id: MessageId::new(now_ms(), seq),
        user: UserName::parse("alice").unwrap_or_else(|_| unreachable!("a valid name")),
        body: body.to_owned(),
        trace: String::new(),
    }
}

fn codec(room: &RoomName) {
    const N: u64 = 200_000;
    let message = message(room, 1, &"x".repeat(100));
    report("encode a message frame (100-byte body)", N, || {
        let started = Instant::now();
        for _ in 0..N {
            black_box(encode_message(black_box(&message)));
        }
        started.elapsed()
    });
    let send = r#"{"type":"send","room":"lobby","body":"hello there, how is everyone doing today?","ref":"42"}"#;
    report("parse a send frame", N, || {
        let started = Instant::now();
        for _ in 0..N {
            let _ = black_box(parse_client_frame(black_box(send)));
        }
        started.elapsed()
    });
}

/// A room member that counts its deliveries.
struct Counter {
    user: UserName,
    delivered: Arc<AtomicU64>,
}

impl LocalMember for Counter {
    fn user(&self) -> &UserName {
        &self.user
    }

    fn deliver(&self, event: &RoomEvent) {
        black_box(event.frame.clone());
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

async fn fan_out(room: &RoomName, members: u64) {
    const MESSAGES: u64 = 2_000;
    // The threads of a node: the engine hands off on this one, rooms run on an arbiter of their
    // own, sessions (here, counters) on a worker's.
    let (rooms_arbiter, members_arbiter) = (Arbiter::new(), Arbiter::new());
    let metrics = Metrics::new();
    let directory = RoomDirectory::new(metrics.clone());
    let registry = {
        let (directory, metrics) = (directory.clone(), metrics.clone());
        Registry::start_in_arbiter(&rooms_arbiter.handle(), move |_| Registry::new(directory, "bench", metrics))
    };
    let delivered = Arc::new(AtomicU64::new(0));
    // The members join on their worker's thread, as sessions do.
    let (joins_tx, mut joins) = tokio::sync::mpsc::unbounded_channel();
    {
        let (room, metrics, delivered) = (room.clone(), metrics.clone(), delivered.clone());
        members_arbiter.spawn(async move {
            let worker = LocalMembers::start(metrics);
            for n in 0..members {
                let user = UserName::parse(&format!("user-{n}")).unwrap_or_else(|_| unreachable!("a valid name"));
                let session = SessionId::random();
                worker.add(&room, session, Rc::new(Counter { user, delivered: delivered.clone() }));
                let _ = joins_tx.send(JoinRoom { room: room.clone(), session, worker: worker.addr() });
            }
        });
    }
    while let Some(join) = joins.recv().await {
        if registry.send(join).await.is_err() {
            eprintln!("the registry stopped");
            return;
        }
    }
    let body = "x".repeat(100);
    let mut seq = 0;
    report(&format!("fan-out to {members} members (hand-off to last count), per delivery"), MESSAGES * members, || {
        delivered.store(0, Ordering::Relaxed);
        let started = Instant::now();
        for _ in 0..MESSAGES {
            seq += 1;
            directory.deliver(BusEvent::Message(Arc::new(message(room, seq, &body))));
        }
        while delivered.load(Ordering::Relaxed) < MESSAGES * members {
            std::thread::yield_now();
        }
        started.elapsed()
    });
    rooms_arbiter.stop();
    members_arbiter.stop();
}

fn main() {
    let room = RoomName::parse("lobby").unwrap_or_else(|_| unreachable!("a valid name"));
    codec(&room);
    let system = actix::System::new();
    system.block_on(async {
        for members in [10, 100] {
            fan_out(&room, members).await;
        }
    });
}
