//! One load-generator connection: connect, join its room, optionally send at a fixed rate, and
//! check every message it receives (latency from the timestamp in the body, order by id,
//! duplicates by the sender's sequence number).

use std::{
    borrow::Cow,
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::watch,
};

use crate::{
    tally::{Phase, Tally},
    wire::{self, ClientReader, ClientWriter, Received, WireError},
};

/// A message id, `<ms>-<seq>`, as the pair it is ordered by.
type MessageId = (u64, u64);

fn parse_id(id: &str) -> Option<MessageId> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// What one connection is asked to do.
pub struct Plan {
    pub index: usize,
    pub url: String,
    pub address: SocketAddr,
    pub source: Option<std::net::IpAddr>,
    pub room: usize,
    pub room_name: String,
    pub user: String,
    /// Messages per second when this connection sends.
    pub rate: Option<f64>,
    /// How long after sending starts this connection sends its first message.
    pub first_send_after: Duration,
    /// Leave right after joining (a churn run).
    pub leave_at_once: bool,
    pub body_bytes: usize,
    /// Send an idempotency key with every message, made from this run's number (see
    /// `run::run_number`), so a run against a Redis that still remembers an earlier run's keys
    /// is not answered with that run's ids.
    pub keys: Option<u32>,
}

/// Why a connection did not get going.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the server closed the connection before {0}")]
    Closed(&'static str),
}

/// The current time in microseconds since the Unix epoch.
fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// A body of `bytes` bytes: `<send time us>:<sender>:<sequence>:` padded with `x`.
pub fn body(sender: usize, sequence: u64, bytes: usize) -> String {
    let mut body = format!("{}:{sender}:{sequence}:", now_us());
    if body.len() < bytes {
        body.extend(std::iter::repeat_n('x', bytes - body.len()));
    }
    body
}

/// The send time, sender and sequence of a body made by [`body`].
pub fn parse_body(body: &str) -> Option<(u64, usize, u64)> {
    let mut parts = body.splitn(4, ':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Connects and upgrades; returns the stream and what came right behind the handshake.
async fn open(plan: &Plan) -> Result<(TcpStream, bytes::BytesMut), ConnectionError> {
    let socket = if plan.address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(source) = plan.source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let mut stream = socket.connect(plan.address).await?;
    stream.set_nodelay(true)?;
    let url = format!("{}?user={}", plan.url, plan.user);
    let early = wire::handshake(&mut stream, &url).await?;
    Ok((stream, early))
}

/// Reads until a frame of `kind` arrives, answering pings meanwhile.
async fn expect(
    reader: &mut ClientReader<'_>,
    writer: &mut ClientWriter<'_>,
    kind: &'static str,
) -> Result<(), ConnectionError> {
    loop {
        match reader.next().await {
            Ok(Received::Text(text)) => {
                if serde_json::from_slice::<Frame>(&text).is_ok_and(|frame| frame.kind == kind) {
                    return Ok(());
                }
            }
            Ok(Received::Ping(payload)) => writer.pong(payload).await?,
            Ok(Received::Other) => {}
            Ok(Received::Close) | Err(WireError::Closed) => return Err(ConnectionError::Closed(kind)),
            Err(error) => return Err(error.into()),
        }
    }
}

/// Waits for the run's next phase; holding the future across deliveries keeps one waiter
/// registered instead of registering and dropping one per frame.
async fn next_phase(mut phase: watch::Receiver<Phase>) -> (watch::Receiver<Phase>, Phase) {
    let now = if phase.changed().await.is_ok() { *phase.borrow_and_update() } else { Phase::Done };
    (phase, now)
}

/// Runs the connection until the run is over; records into `tally`.
pub async fn run(plan: Plan, tally: Arc<Tally>, mut phase: watch::Receiver<Phase>) {
    let started = Instant::now();
    let (mut stream, early) = match open(&plan).await {
        Ok(opened) => opened,
        Err(error) => return tally.failed(&error.to_string()),
    };
    let (read, write) = stream.split();
    let (mut reader, mut writer) = (ClientReader::new(read, early), ClientWriter::new(write));
    let joined = async {
        expect(&mut reader, &mut writer, "welcome").await?;
        tally.record_connect(plan.index, started.elapsed());
        writer.text(json!({"type":"join","room":plan.room_name}).to_string()).await?;
        expect(&mut reader, &mut writer, "joined").await
    };
    if let Err(error) = joined.await {
        return tally.failed(&error.to_string());
    }
    tally.joined(plan.room);
    if plan.leave_at_once {
        let _ = writer.close().await;
        return;
    }

    let mut checker = Checker::default();
    let period = plan.rate.map_or(Duration::from_secs(3600), |rate| Duration::from_secs_f64(1.0 / rate));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sequence = 0u64;
    let mut current = *phase.borrow_and_update();
    let mut ticking = false;
    let mut phase_change = Box::pin(next_phase(phase));
    while current != Phase::Done {
        let sending = plan.rate.is_some() && current == Phase::Sending;
        if sending && !ticking {
            ticker.reset_at(tokio::time::Instant::now() + plan.first_send_after);
            ticking = true;
        }
        tokio::select! {
            (receiver, now) = &mut phase_change => {
                current = now;
                phase_change.set(next_phase(receiver));
            }
            _ = ticker.tick(), if sending => {
                sequence += 1;
                let mut frame = json!({"type":"send","room":plan.room_name,"body":body(plan.index, sequence, plan.body_bytes)});
                if let Some(run) = plan.keys {
                    // Unique per message and run, and as long as the clients' random keys.
                    frame["key"] = json!(format!("{run:08x}{:08x}{sequence:016x}", plan.index));
                }
                if writer.text(frame.to_string()).await.is_err() {
                    tally.failed("send failed");
                    break;
                }
                tally.sent.fetch_add(1, Ordering::Relaxed);
            }
            received = reader.next() => match received {
                Ok(Received::Text(text)) => checker.frame(&text, &plan, &tally),
                Ok(Received::Ping(payload)) => {
                    if writer.pong(payload).await.is_err() {
                        tally.dropped.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                Ok(Received::Other) => {}
                Ok(Received::Close) | Err(_) => {
                    tally.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            },
        }
    }
    let _ = writer.close().await;
}

/// What one connection has seen: the newest id, and each sender's newest sequence number.
#[derive(Default)]
struct Checker {
    last_id: Option<MessageId>,
    last_sequence: HashMap<usize, u64>,
}

/// The fields of a server frame the checker reads; borrowed, so a delivery allocates nothing.
#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    body: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
}

impl Checker {
    fn frame(&mut self, text: &[u8], plan: &Plan, tally: &Tally) {
        let Ok(frame) = serde_json::from_slice::<Frame>(text) else { return };
        match &*frame.kind {
            "message" => self.message(&frame, plan, tally),
            "ack" => tally.acked(plan.room),
            "error" => tally.error(frame.code.as_deref().unwrap_or("unknown")),
            _ => {}
        }
    }

    fn message(&mut self, frame: &Frame, plan: &Plan, tally: &Tally) {
        let id: Option<MessageId> = frame.id.as_deref().and_then(parse_id);
        let Some((sent_us, sender, sequence)) = frame.body.as_deref().and_then(parse_body) else { return };
        let last = self.last_sequence.entry(sender).or_insert(0);
        if sequence <= *last {
            tally.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = sequence;
        if id <= self.last_id {
            tally.order_violation(plan.room);
        }
        self.last_id = id.max(self.last_id);
        let now = now_us();
        let latency = Duration::from_micros(now.saturating_sub(sent_us));
        tally.delivered(plan.index, latency, now / 1000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_time_sender_and_sequence_at_the_asked_size() {
        let made = body(7, 42, 64);
        assert_eq!(made.len(), 64);
        let (sent, sender, sequence) = parse_body(&made).unwrap();
        assert!(sent > 1_700_000_000_000_000);
        assert_eq!((sender, sequence), (7, 42));
        assert!(parse_body("hello").is_none());
    }

    #[test]
    fn the_checker_counts_duplicates_and_order_violations() {
        let tally = Tally::new(1);
        let plan = Plan {
            index: 0,
            url: String::new(),
            address: "127.0.0.1:1".parse().unwrap(),
            source: None,
            room: 0,
            room_name: "r".into(),
            user: "u".into(),
            rate: None,
            first_send_after: Duration::ZERO,
            leave_at_once: false,
            body_bytes: 64,
            keys: None,
        };
        let mut checker = Checker::default();
        let frame = |id: &str, sender: usize, sequence: u64| {
            json!({"type":"message","room":"r","id":id,"user":"u","body":body(sender, sequence, 64)})
                .to_string()
                .into_bytes()
        };
        checker.frame(&frame("5-0", 1, 1), &plan, &tally);
        checker.frame(&frame("6-0", 2, 1), &plan, &tally);
        checker.frame(&frame("4-0", 1, 2), &plan, &tally); // new, but older than what came before
        checker.frame(&frame("6-0", 2, 1), &plan, &tally); // the same message again
        assert_eq!((tally.received(), tally.order_violations()), (3, 1));
        assert_eq!(tally.duplicates.load(Ordering::Relaxed), 1);
    }
}
