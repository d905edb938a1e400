//! A whole run: open the connections at the ramp rate, let the senders send for the duration,
//! wait for the deliveries, and total what every connection saw.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio::sync::watch;

use crate::{
    BenchArgs,
    connection::{self, Plan},
    process_stats::{self, MachineTicks, ProcessStats},
    report::Report,
    tally::{Phase, Tally},
};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error(transparent)]
    Stats(#[from] process_stats::StatsError),
}

/// `ws://host:port/path` -> the socket address to connect to.
async fn resolve(url: &str) -> Result<SocketAddr, RunError> {
    let rest = url.strip_prefix("ws://").ok_or_else(|| RunError::Resolve(url.to_owned()))?;
    let host = rest.split('/').next().unwrap_or(rest);
    let host = if host.contains(':') { host.to_owned() } else { format!("{host}:80") };
    tokio::net::lookup_host(&host)
        .await
        .ok()
        .and_then(|mut found| found.next())
        .ok_or_else(|| RunError::Resolve(url.to_owned()))
}

/// A number for this run, different from one run to the next: the low 32 bits of the clock in
/// nanoseconds. It goes into the idempotency keys of `--keys`.
fn run_number() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u32)
}

/// When sender `sender` of `senders` sends first, after sending starts: sender n starts n/S of
/// a period in, so the senders' messages are spread over each period as independent clients'
/// would be. Started together they would send in lockstep, bursts the nodes' latency would show.
fn first_send_after(sender: usize, senders: usize, rate: f64) -> Duration {
    Duration::from_secs_f64(sender as f64 / senders.max(1) as f64 / rate)
}

async fn read_all(pids: &[u32]) -> Result<Vec<ProcessStats>, RunError> {
    let mut stats = Vec::new();
    for pid in pids {
        stats.push(process_stats::read(*pid).await?);
    }
    Ok(stats)
}

/// Runs the benchmark `args` describes; `progress` gets a line each second.
pub async fn run(args: &BenchArgs, progress: impl Fn(&str)) -> Result<Report, RunError> {
    let mut addresses = Vec::new();
    for url in &args.urls {
        addresses.push(resolve(url).await?);
    }
    let before = read_all(&args.pids).await?;
    let own_before = process_stats::read(std::process::id()).await?;
    let tally = Arc::new(Tally::new(args.rooms));
    let (phase, watching) = watch::channel(Phase::Holding);
    let started = Instant::now();
    let run_number = run_number();
    let mut tasks = Vec::with_capacity(args.connections);
    let mut ramp =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.ramp)).max(Duration::from_micros(100)));
    let per_tick = (f64::from(args.ramp) / 10_000.0).ceil().max(1.0) as usize;
    let mut next = 0;
    while next < args.connections {
        ramp.tick().await;
        for _ in 0..per_tick.min(args.connections - next) {
            let index = args.first_connection + next;
            let room = next % args.rooms;
            let sends = !args.idle && next < args.senders;
            let plan = Plan {
                index,
                url: args.urls[next % args.urls.len()].clone(),
                address: addresses[next % addresses.len()],
                source: (!args.source_ips.is_empty()).then(|| args.source_ips[next % args.source_ips.len()]),
                room,
                room_name: format!("{}{room}", args.room_prefix),
                user: format!("bench-{index}"),
                rate: sends.then_some(args.rate),
                first_send_after: if sends { first_send_after(next, args.senders, args.rate) } else { Duration::ZERO },
                leave_at_once: args.churn,
                body_bytes: args.body_bytes,
                keys: args.keys.then_some(run_number),
            };
            tasks.push(tokio::spawn(connection::run(plan, tally.clone(), watching.clone())));
            next += 1;
        }
    }
    let connect_deadline = Instant::now() + Duration::from_secs(60);
    while !tally.settled(args.connections) && Instant::now() < connect_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress(&format!(
        "connected {} of {} ({} failed) in {:.1} s",
        tally.established.load(Ordering::Relaxed),
        args.connections,
        tally.failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    ));

    let at_send = read_all(&args.pids).await?;
    let machine_at_send = MachineTicks::read().await?;
    let sending_started = Instant::now();
    let _ = phase.send(if args.idle { Phase::Holding } else { Phase::Sending });
    // A churn run spent its duration connecting; its connections are gone already.
    let duration = if args.churn { Duration::ZERO } else { args.duration };
    let mut last_received = 0;
    while sending_started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1).min(duration)).await;
        let received = tally.received.load(Ordering::Relaxed);
        progress(&format!(
            "{:>4.0} s  sent {}  acked {}  received {}  ({} deliveries/s)",
            sending_started.elapsed().as_secs_f64(),
            tally.sent.load(Ordering::Relaxed),
            tally.acked.load(Ordering::Relaxed),
            received,
            received - last_received
        ));
        last_received = received;
    }
    let _ = phase.send(Phase::Draining);
    let sending_time = sending_started.elapsed();
    let drain_started = Instant::now();
    // Acks still in flight raise the expected count, so wait for both to settle.
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let complete = tally.received.load(Ordering::Relaxed) + tally.duplicates.load(Ordering::Relaxed)
            >= tally.expected()
            && tally.acked.load(Ordering::Relaxed) + tally.error_count() >= tally.sent.load(Ordering::Relaxed);
        if complete || drain_started.elapsed() >= args.drain {
            break;
        }
    }
    let after = read_all(&args.pids).await?;
    let steal_percent = MachineTicks::read().await?.steal_percent_since(machine_at_send);
    let own_after = process_stats::read(std::process::id()).await?;
    let _ = phase.send(Phase::Done);
    for task in tasks {
        let _ = task.await;
    }
    let mut report = tally.report(args, sending_time, sending_started, before, after);
    report.bench_cpu_seconds = own_after.cpu_seconds - own_before.cpu_seconds;
    report.steal_percent = steal_percent;
    let sending_cpu: f64 =
        report.nodes_after.iter().zip(&at_send).map(|(after, at)| after.cpu_seconds - at.cpu_seconds).sum();
    if report.deliveries_received > 0 {
        report.node_cpu_us_per_delivery = sending_cpu * 1e6 / report.deliveries_received as f64;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_start_spread_evenly_over_one_period() {
        let offsets: Vec<u128> = (0..4).map(|sender| first_send_after(sender, 4, 10.0).as_millis()).collect();
        assert_eq!(offsets, [0, 25, 50, 75]);
        assert_eq!(first_send_after(0, 1, 0.5), Duration::ZERO);
    }
}
