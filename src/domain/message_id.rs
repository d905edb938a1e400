//! Message ids: `<ms>-<seq>`, the shape of a Redis stream id.
//!
//! The millisecond part is the publish time (it is also the `ts` of the message); the sequence
//! orders messages published in the same millisecond. Ids compare as the pair `(ms, seq)`, which
//! is the order every member of a room sees.

use std::{fmt, str::FromStr};

use serde::{Serialize, Serializer};

/// A message id, strictly increasing within a room.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageId {
    ms: u64,
    seq: u64,
}

/// The text was not `<u64>-<u64>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a message id looks like `<ms>-<seq>`, e.g. \"1700000000000-0\"")]
pub struct ParseMessageIdError;

/// Milliseconds since the Unix epoch: the time base of ids (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl MessageId {
    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// Milliseconds since the Unix epoch at publish time.
    pub const fn millis(self) -> u64 {
        self.ms
    }

    pub const fn seq(self) -> u64 {
        self.seq
    }

    /// The smallest id strictly greater than `self`, given a clock reading: ids never go back in
    /// time even when the wall clock does.
    pub fn next_after(self, now_ms: u64) -> Self {
        if now_ms > self.ms { Self { ms: now_ms, seq: 0 } } else { Self { ms: self.ms, seq: self.seq + 1 } }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MessageId {
    type Err = ParseMessageIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').ok_or(ParseMessageIdError)?;
        let digits = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseMessageIdError);
            }
            part.parse::<u64>().map_err(|_| ParseMessageIdError)
        };
        Ok(Self { ms: digits(ms)?, seq: digits(seq)? })
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_redis_shaped_ids() {
        let id: MessageId = "1700000000000-12".parse().unwrap();
        assert_eq!((id.millis(), id.seq()), (1_700_000_000_000, 12));
        assert_eq!(id.to_string(), "1700000000000-12");
        for bad in ["", "12", "-1", "1-", "a-1", "1-2-3", "+1-2", "1 -2", "99999999999999999999-0"] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn orders_by_time_then_sequence_not_by_text() {
        let a: MessageId = "5-9".parse().unwrap();
        let b: MessageId = "5-10".parse().unwrap();
        let c: MessageId = "6-0".parse().unwrap();
        assert!(a < b && b < c);
    }

    #[test]
    fn next_after_never_goes_back() {
        let id = MessageId::new(100, 3);
        assert_eq!(id.next_after(100), MessageId::new(100, 4));
        assert_eq!(id.next_after(50), MessageId::new(100, 4));
        assert_eq!(id.next_after(101), MessageId::new(101, 0));
    }
}
