//! Micro-benchmarks of the work a node does per message and per delivery, without the network:
//! encoding a `message` frame, parsing a client `send` frame, and the room fan-out (the engine's
//! hand-off to the room directory, its one encode, and one actix message to the members' worker
//! thread, across threads as on a node) to members that only count what they get.
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

use actix::Arbiter;
use rookery::{
    domain::{Message, MessageId, RoomName, SessionId, UserName, now_ms},
    engine::{BusEvent, Delivery},
    protocol::{encode_message, parse_client_frame},
    rooms::{LocalMember, LocalMembers, RoomDirectory, RoomEvent},
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
    // The threads of a node: the engine hands off on this one, sessions (here, counters) live on
    // a worker's.
    let members_arbiter = Arbiter::new();
    let metrics = Metrics::new();
    let directory = RoomDirectory::new("bench", metrics.clone());
    let delivered = Arc::new(AtomicU64::new(0));
    // The members join on their worker's thread, as sessions do.
    let (joined_tx, joined) = tokio::sync::oneshot::channel();
    {
        let (room, metrics, delivered, directory) =
            (room.clone(), metrics.clone(), delivered.clone(), directory.clone());
        members_arbiter.spawn(async move {
            let worker = LocalMembers::start(metrics);
            for n in 0..members {
                let user = UserName::parse(&format!("user-{n}")).unwrap_or_else(|_| unreachable!("a valid name"));
                worker.add(&room, SessionId::random(), Rc::new(Counter { user, delivered: delivered.clone() }));
                directory.join(&room, &worker.addr());
            }
            // The worker's actor keeps its members after this task ends.
            let _ = joined_tx.send(());
        });
    }
    if joined.await.is_err() {
        eprintln!("the members did not join");
        return;
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
