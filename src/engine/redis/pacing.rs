//! Publishes paced per worker thread: while a thread is busy, its publishes go to Redis at most
//! once every `ROOKERY_PUBLISH_INTERVAL_MS`, together. Busy is two publishes an interval or
//! more, on average over about the thread's last sixteen.
//!
//! At the rates a node publishes, Redis spends more on waking up for a request than on the
//! publish function itself: at 5,000 single requests a second over four connections, a bare
//! `PING` costs it 11 us of CPU and a publish 21 us, and publishes written four at a time cost
//! it 13 us each (BENCHMARKS.md, change 24). Publishes that leave a thread in the same turn go
//! out in one write over its connection (see `connection`), and Redis reads them in one `read`
//! and answers them in one `write`. A thread that publishes less often is not paced: its
//! batches would seldom hold two, and the wait would buy nothing (rooms of 100 at 1,000
//! messages a second on two nodes waited 2 ms more at the median for no less Redis CPU). Nor is
//! a publish an interval or more after the thread's latest batch.
//!
//! What waits is bounded without a queue of its own: a session runs one command at a time, so
//! a thread has at most one waiting publish per session and per HTTP request it serves. The
//! pace is the thread's: two engines on one thread (as in tests) are paced together.
//!
//! On a Redis Cluster or behind Sentinel publishes share one connection and are not paced:
//! that was not measured.

use std::{cell::Cell, time::Duration};

use tokio::time::Instant;

thread_local! {
    static THIS_THREADS_PACE: Cell<Pace> = const { Cell::new(Pace::NEW) };
}

/// How often a worker thread's publishes may go to Redis; zero sends each at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishPacing {
    interval: Duration,
}

impl PublishPacing {
    pub fn new(interval: Duration) -> Self {
        Self { interval }
    }

    /// Waits for this thread's next batch when the thread is busy and its latest batch went
    /// less than an interval ago.
    pub async fn turn(&self) {
        if self.interval.is_zero() {
            return;
        }
        let now = Instant::now();
        let wait_until = THIS_THREADS_PACE.with(|pace| {
            let (next, wait_until) = pace.get().publish(now, self.interval);
            pace.set(next);
            wait_until
        });
        if let Some(at) = wait_until {
            tokio::time::sleep_until(at).await;
        }
    }
}

/// What a thread knows of its own publishes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pace {
    /// When its latest batch went, or will go.
    latest_batch: Option<Instant>,
    /// When it last published, paced or not.
    latest_publish: Option<Instant>,
    /// The time between its publishes, averaged over about the last sixteen.
    mean_gap: Option<Duration>,
}

impl Pace {
    const NEW: Pace = Pace { latest_batch: None, latest_publish: None, mean_gap: None };

    /// The thread after a publish at `now`, and when that publish goes (`None`: at once).
    fn publish(self, now: Instant, interval: Duration) -> (Pace, Option<Instant>) {
        // A long pause counts as two intervals, so a thread that turns busy is paced again
        // within a few dozen publishes.
        let longest = interval * 2;
        let gap = self.latest_publish.map_or(longest, |latest| now.saturating_duration_since(latest).min(longest));
        let mean_gap = self.mean_gap.map_or(gap, |mean| mean - mean / 16 + gap / 16);
        let busy = mean_gap <= interval / 2;
        let wait_until = match self.latest_batch {
            // Fewer than two publishes an interval: a batch would seldom hold two.
            _ if !busy => None,
            // A batch is waiting to go: join it.
            Some(at) if at > now => Some(at),
            // One went less than an interval ago: the next goes an interval after it.
            Some(at) if now < at + interval => Some(at + interval),
            _ => None,
        };
        // A batch still waiting stays the latest, so the next goes an interval after it.
        let latest_batch = Some(wait_until.unwrap_or(now).max(self.latest_batch.unwrap_or(now)));
        (Pace { latest_batch, latest_publish: Some(now), mean_gap: Some(mean_gap) }, wait_until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(2);

    /// A thread that has published every `gap` for a while, its latest batch at `latest_batch`.
    fn thread(gap: Duration, latest_batch: Instant) -> Pace {
        Pace { latest_batch: Some(latest_batch), latest_publish: Some(latest_batch), mean_gap: Some(gap) }
    }

    #[test]
    fn a_publish_on_a_quiet_thread_goes_at_once() {
        let now = Instant::now();
        let new = Pace::NEW;
        assert_eq!(new.publish(now, INTERVAL).1, None);
        let busy_once = thread(Duration::from_micros(300), now);
        assert_eq!(busy_once.publish(now + INTERVAL, INTERVAL).1, None, "an interval after the latest batch");
    }

    #[test]
    fn a_publish_of_a_busy_thread_soon_after_a_batch_waits_an_interval_from_it() {
        let sent = Instant::now();
        let (pace, wait_until) =
            thread(Duration::from_micros(500), sent).publish(sent + Duration::from_micros(500), INTERVAL);
        assert_eq!(wait_until, Some(sent + INTERVAL));
        assert_eq!(pace.latest_batch, Some(sent + INTERVAL));
    }

    #[test]
    fn publishes_while_a_batch_waits_join_it() {
        let now = Instant::now();
        let waiting = now + Duration::from_micros(800);
        let busy =
            Pace { latest_batch: Some(waiting), latest_publish: Some(now), mean_gap: Some(Duration::from_micros(500)) };
        let (pace, wait_until) = busy.publish(now + Duration::from_micros(100), INTERVAL);
        assert_eq!(wait_until, Some(waiting));
        assert_eq!(pace.latest_batch, Some(waiting));
    }

    #[test]
    fn a_thread_publishing_less_than_twice_an_interval_is_not_paced() {
        let sent = Instant::now();
        let sparse = thread(INTERVAL * 3 / 4, sent);
        let (pace, wait_until) = sparse.publish(sent + Duration::from_micros(500), INTERVAL);
        assert_eq!(wait_until, None, "goes at once, though a batch went 0.5 ms ago");
        assert_eq!(pace.latest_batch, Some(sent + Duration::from_micros(500)));
    }

    #[test]
    fn a_batch_still_waiting_stays_the_latest_when_the_thread_is_no_longer_busy() {
        let latest_publish = Instant::now();
        let now = latest_publish + Duration::from_micros(1_500);
        let waiting = now + Duration::from_micros(800);
        let slowing =
            Pace { latest_batch: Some(waiting), latest_publish: Some(latest_publish), mean_gap: Some(INTERVAL / 2) };
        let (pace, wait_until) = slowing.publish(now, INTERVAL);
        assert_eq!(wait_until, None, "no longer busy: goes at once");
        assert_eq!(pace.latest_batch, Some(waiting), "the next batch goes an interval after the waiting one");
    }

    #[test]
    fn no_publish_waits_longer_than_an_interval() {
        // Gaps from none to three intervals, mostly short, in no order of ours (xorshift).
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut now = Instant::now();
        let mut pace = Pace::NEW;
        let mut waited = 0;
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let scale = if seed.is_multiple_of(5) { 1.0 } else { 0.1 };
            now += INTERVAL.mul_f64((seed % 3_000) as f64 / 1_000.0 * scale);
            let (next, wait_until) = pace.publish(now, INTERVAL);
            pace = next;
            if let Some(at) = wait_until {
                assert!(at > now && at - now <= INTERVAL, "waits {:?}", at.saturating_duration_since(now));
                waited += 1;
            }
        }
        assert!(waited > 1_000, "only {waited} of 10,000 publishes waited");
    }

    #[test]
    fn a_thread_turning_busy_is_paced_within_a_few_dozen_publishes() {
        let mut now = Instant::now();
        let mut pace = Pace::NEW;
        let mut waited = Vec::new();
        for _ in 0..64 {
            now += Duration::from_micros(200);
            let (next, wait_until) = pace.publish(now, INTERVAL);
            pace = next;
            waited.push(wait_until.is_some());
        }
        assert!(pace.mean_gap < Some(INTERVAL / 2), "{pace:?}");
        assert!(waited[32..].iter().all(|&w| w), "the last 32 of 64 publishes 0.2 ms apart waited: {waited:?}");
    }
}
