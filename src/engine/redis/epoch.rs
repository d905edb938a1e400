//! The Redis epoch: a random value and the time it was set (Redis's clock), kept at
//! `rookery:epoch`. A different value means Redis lost its data; the time is where the data
//! Redis now holds begins, so a resume position from before it cannot be vouched for: whatever
//! was acked after it and before the loss is gone.

use redis::aio::ConnectionLike;

use super::Keys;
use crate::{domain::MessageId, engine::Recovery};

/// Sets the epoch to ARGV[1] and the server's time in ms, unless one is set; returns the epoch.
const ENSURE: &str = "local t = redis.call('TIME') \
    local value = ARGV[1] .. ':' .. string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) \
    if redis.call('SET', KEYS[1], value, 'NX') then return value end \
    return redis.call('GET', KEYS[1])";

/// The epoch, set to a new random value first if Redis has none (first use, or Redis lost its
/// data).
pub async fn ensure(conn: &mut impl ConnectionLike) -> redis::RedisResult<String> {
    let candidate = uuid::Uuid::new_v4().simple().to_string();
    redis::cmd("EVAL").arg(ENSURE).arg(1).arg(Keys::epoch()).arg(candidate).query_async(conn).await
}

/// Reads the epoch (to send in the same round trip as a read it vouches for).
pub fn get() -> redis::Cmd {
    let mut cmd = redis::cmd("GET");
    cmd.arg(Keys::epoch());
    cmd
}

/// When the data of `epoch` begins (ms). No epoch at all means Redis lost its data and no node
/// has set a new one yet: nothing before now can be vouched for. An epoch without a time (set
/// by an older node) vouches for everything, as it did then.
fn started_ms(epoch: Option<&str>) -> u64 {
    match epoch {
        None => u64::MAX,
        Some(value) => value.rsplit_once(':').and_then(|(_, ms)| ms.parse().ok()).unwrap_or(0),
    }
}

/// A recovery as far as `epoch` (read with it) vouches for it: a position from before the epoch
/// began is not recovered, whatever the history holds.
pub fn vouch(mut recovery: Recovery, since: Option<MessageId>, epoch: Option<&str>) -> Recovery {
    if since.is_some_and(|since| since.millis() < started_ms(epoch)) {
        recovery.recovered = false;
    }
    recovery
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_from_before_the_epoch_are_not_recovered() {
        let epoch = Some("4f2a:1000");
        assert_eq!(started_ms(epoch), 1000);
        let recovered =
            Recovery { messages: Vec::new(), last_id: None, recovered: true, trimmed_through: None, seq: None };
        assert!(!vouch(recovered.clone(), Some(MessageId::new(999, 5)), epoch).recovered);
        assert!(vouch(recovered.clone(), Some(MessageId::new(1000, 0)), epoch).recovered);
        assert!(vouch(recovered.clone(), None, epoch).recovered, "a join without since recovers nothing");
        assert!(!vouch(recovered.clone(), Some(MessageId::new(5, 0)), None).recovered);
        assert!(vouch(recovered, Some(MessageId::new(5, 0)), Some("4f2a")).recovered);
    }
}
