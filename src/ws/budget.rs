//! The node-wide bound on outbound bytes: what every session's queue holds, plus what its
//! driver has taken from the queue and not yet written to the socket (a large frame leaves the
//! queue whole and waits in the driver while the socket is full).
//!
//! Each session's queue is bounded on its own (`outbound`), but many sessions that read nothing
//! can each fill theirs: 50 stalled clients asking for big history pages pinned 200 MB. The
//! budget (`ROOKERY_OUTBOUND_BUDGET_BYTES`) caps the sum. A push that takes the node over it
//! evicts the sessions holding the most, largest first, until the rest fit: each evicted
//! connection drops what it holds and closes with 1013 (or is reset, when its socket takes not
//! even the close frame). A session is never refused a frame because of others' bytes, so the
//! sessions that keep up are untouched.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};

use futures_util::task::AtomicWaker;

use crate::telemetry::Metrics;

/// The node's outbound bytes and the sessions holding them.
pub struct OutboundBudget {
    limit: usize,
    tenants: Mutex<Vec<Arc<Tenant>>>,
    next_id: AtomicU64,
    metrics: Metrics,
}

/// One session's share of the budget.
pub struct Tenant {
    id: u64,
    held: AtomicUsize,
    evicted: AtomicBool,
    /// The session driver's waker, woken when it is evicted (smaller than a `Notify`: it is
    /// paid per connection).
    waker: AtomicWaker,
}

/// A session's handle on the budget: it counts the session's bytes and, dropped, gives back
/// what is still counted.
pub struct Share {
    budget: Arc<OutboundBudget>,
    tenant: Arc<Tenant>,
}

impl OutboundBudget {
    pub fn new(limit: usize, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self { limit, tenants: Mutex::default(), next_id: AtomicU64::new(0), metrics })
    }

    /// A share for a new session.
    pub fn join(self: &Arc<Self>) -> Share {
        let tenant = Arc::new(Tenant {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            held: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        self.tenants.lock().unwrap_or_else(|p| p.into_inner()).push(tenant.clone());
        Share { budget: self.clone(), tenant }
    }

    /// The bytes counted now. The metric is the count: one atomic add per frame, not two.
    pub fn held(&self) -> usize {
        self.metrics.outbound_bytes.get().max(0) as usize
    }

    /// Evicts the tenants holding the most until what the others hold fits the limit.
    fn evict_over_limit(&self) {
        let tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let mut staying: Vec<&Arc<Tenant>> =
            tenants.iter().filter(|tenant| !tenant.evicted.load(Ordering::Acquire)).collect();
        let mut total: usize = staying.iter().map(|tenant| tenant.held.load(Ordering::Relaxed)).sum();
        staying.sort_by_key(|tenant| std::cmp::Reverse(tenant.held.load(Ordering::Relaxed)));
        for tenant in staying {
            if total <= self.limit {
                break;
            }
            total = total.saturating_sub(tenant.held.load(Ordering::Relaxed));
            tenant.evicted.store(true, Ordering::Release);
            tenant.waker.wake();
            self.metrics.outbound_evictions.inc();
        }
    }
}

impl Share {
    /// Counts `bytes` more for this session; evicts sessions when the node is over its budget.
    pub fn take(&self, bytes: usize) {
        self.tenant.held.fetch_add(bytes, Ordering::Relaxed);
        let held = (self.budget.metrics.outbound_bytes.inc_by(bytes as i64) as usize).saturating_add(bytes);
        if held > self.budget.limit && !self.is_evicted() {
            self.budget.evict_over_limit();
        }
    }

    /// Counts `bytes` fewer (written to the socket, or dropped).
    pub fn give_back(&self, bytes: usize) {
        let bytes = bytes.min(self.tenant.held.load(Ordering::Relaxed));
        if bytes > 0 {
            self.tenant.held.fetch_sub(bytes, Ordering::Relaxed);
            self.budget.metrics.outbound_bytes.dec_by(bytes as i64);
        }
    }

    pub fn is_evicted(&self) -> bool {
        self.tenant.evicted.load(Ordering::Acquire)
    }

    /// What resolves once this session is evicted, for its driver.
    pub fn eviction(&self) -> Eviction {
        Eviction(self.tenant.clone())
    }
}

/// A session's eviction, awaited by its driver.
pub struct Eviction(Arc<Tenant>);

impl Eviction {
    /// Resolves once the session is evicted.
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            self.0.waker.register(cx.waker());
            if self.0.evicted.load(Ordering::Acquire) { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
        })
        .await
    }
}

/// A share of a budget no session can exceed, for tests of a single queue.
#[cfg(test)]
pub fn unbounded_share() -> Share {
    OutboundBudget::new(usize::MAX, Metrics::new()).join()
}

impl Drop for Share {
    fn drop(&mut self) {
        self.give_back(self.tenant.held.load(Ordering::Relaxed));
        let mut tenants = self.budget.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.retain(|tenant| tenant.id != self.tenant.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn going_over_the_budget_evicts_the_largest_holders_until_the_rest_fit() {
        let budget = OutboundBudget::new(100, Metrics::new());
        let (small, large, middle) = (budget.join(), budget.join(), budget.join());
        small.take(10);
        large.take(60);
        middle.take(30);
        assert_eq!(budget.held(), 100);
        assert!(![&small, &large, &middle].iter().any(|share| share.is_evicted()), "at the limit, not over");
        small.take(1);
        assert!(large.is_evicted(), "the largest goes first");
        assert!(!middle.is_evicted() && !small.is_evicted(), "41 bytes fit");
        large.give_back(60);
        drop(large);
        assert_eq!(budget.held(), 41);
        middle.take(1000);
        assert!(middle.is_evicted() && !small.is_evicted(), "the session that went over is the largest");
        drop(middle);
        assert_eq!(budget.held(), 11, "a dropped share gives back what it held");
    }
}
