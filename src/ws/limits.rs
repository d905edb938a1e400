//! Per-session limits that need state: the `send` token bucket and the `bad_request` window.

use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, holding at most `burst`.
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    refilled: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32) -> Self {
        Self { tokens: f64::from(burst), rate: f64::from(rate), burst: f64::from(burst), refilled: Instant::now() }
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts `bad_request` answers: `limit` of them within `window` close the connection.
pub struct AbuseWindow {
    /// The times of the most recent offences, oldest first; empty for well-behaved clients.
    recent: Vec<Instant>,
    limit: usize,
    window: Duration,
}

impl AbuseWindow {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self { recent: Vec::new(), limit, window }
    }

    /// Records an offence; true when this one reaches the limit.
    pub fn offend(&mut self) -> bool {
        self.offend_at(Instant::now())
    }

    fn offend_at(&mut self, now: Instant) -> bool {
        self.recent.retain(|t| now.saturating_duration_since(*t) < self.window);
        self.recent.push(now);
        self.recent.len() >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket { refilled: start, ..TokenBucket::new(20, 40) };
        assert_eq!((0..50).filter(|_| bucket.try_take_at(start)).count(), 40);
        assert!(!bucket.try_take_at(start + Duration::from_millis(10)));
        let later = start + Duration::from_millis(500);
        assert_eq!((0..50).filter(|_| bucket.try_take_at(later)).count(), 10);
    }

    #[test]
    fn abuse_counts_only_inside_the_window() {
        let start = Instant::now();
        let mut abuse = AbuseWindow::new(10, Duration::from_secs(60));
        assert!(!abuse.offend_at(start));
        for n in 10..18 {
            assert!(!abuse.offend_at(start + Duration::from_secs(n)), "9 offences are tolerated");
        }
        assert!(!abuse.offend_at(start + Duration::from_secs(61)), "the first fell out of the window");
        assert!(abuse.offend_at(start + Duration::from_secs(62)));
    }
}
