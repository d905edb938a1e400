//! Two futures run side by side until one finishes; the second is polled only when it was woken.
//!
//! A connection's driver reads and writes at once. With `tokio::select!` every wake polls both
//! halves: each delivery, which wakes only the writer, also polled the reader, its socket and its
//! heartbeat and drain timers. Here the second future (the reader) gets a waker of its own that
//! marks it before waking the driver, and a poll of the driver polls the reader only when it is
//! marked. The first future (the writer, woken by every delivery) is polled every time: a
//! reader's wake is rare, so polling the writer then costs little, and its wakes go straight to
//! the driver (BENCHMARKS.md, change 14).

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

/// Which future finished first, with its output.
pub enum Finished<A, B> {
    First(A),
    Second(B),
}

/// Polls `first` and `second` until one of them finishes; the other is left as it is, to be
/// driven on or dropped by the caller.
pub fn race<A: Future + Unpin, B: Future + Unpin>(first: A, second: B) -> Race<A, B> {
    // Woken to start with: the first poll polls both.
    let wakeup = Arc::new(Wakeup { woken: AtomicBool::new(true), driver: Mutex::new(None) });
    Race { first, second, second_waker: Waker::from(wakeup.clone()), wakeup, driver: None }
}

pub struct Race<A, B> {
    first: A,
    second: B,
    wakeup: Arc<Wakeup>,
    second_waker: Waker,
    /// The driver's waker as last handed to `wakeup`: the driver is the same task for the
    /// connection's life, so this spares `wakeup` (and its lock) on every other poll.
    driver: Option<Waker>,
}

/// The second future's waker: marks it woken, then wakes the driver.
struct Wakeup {
    woken: AtomicBool,
    driver: Mutex<Option<Waker>>,
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(driver) = self.driver.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref() {
            driver.wake_by_ref();
        }
    }
}

impl<A: Future + Unpin, B: Future + Unpin> Future for Race<A, B> {
    type Output = Finished<A::Output, B::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if !this.driver.as_ref().is_some_and(|known| known.will_wake(cx.waker())) {
            *this.wakeup.driver.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(cx.waker().clone());
            this.driver = Some(cx.waker().clone());
        }
        if let Poll::Ready(output) = Pin::new(&mut this.first).poll(cx) {
            return Poll::Ready(Finished::First(output));
        }
        // The driver's waker is in place before the mark is taken: a wake in between wakes the
        // driver again.
        if this.wakeup.woken.swap(false, Ordering::AcqRel)
            && let Poll::Ready(output) = Pin::new(&mut this.second).poll(&mut Context::from_waker(&this.second_waker))
        {
            return Poll::Ready(Finished::Second(output));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::Cell, future::poll_fn, pin::pin, rc::Rc};

    use super::*;

    /// A future that counts its polls, keeps the waker it was last polled with, and finishes
    /// once `done` is set.
    struct Probe {
        polls: Cell<u32>,
        done: Cell<bool>,
        waker: Cell<Option<Waker>>,
    }

    impl Probe {
        fn new() -> Rc<Self> {
            Rc::new(Self { polls: Cell::new(0), done: Cell::new(false), waker: Cell::new(None) })
        }

        fn future(self: &Rc<Self>) -> impl Future<Output = u32> + Unpin {
            let probe = self.clone();
            poll_fn(move |cx| {
                probe.polls.set(probe.polls.get() + 1);
                probe.waker.set(Some(cx.waker().clone()));
                if probe.done.get() { Poll::Ready(probe.polls.get()) } else { Poll::Pending }
            })
        }

        fn wake(&self) {
            self.waker.take().expect("polled before").wake();
        }
    }

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::Release);
        }
    }

    #[test]
    fn the_second_is_polled_only_when_woken_and_the_first_to_finish_wins() {
        let (writer, reader) = (Probe::new(), Probe::new());
        let mut race = pin!(race(writer.future(), reader.future()));
        let mut cx = Context::from_waker(Waker::noop());

        assert!(race.as_mut().poll(&mut cx).is_pending());
        assert_eq!((writer.polls.get(), reader.polls.get()), (1, 1), "the first poll polls both");
        for _ in 0..3 {
            writer.wake();
            assert!(race.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!((writer.polls.get(), reader.polls.get()), (4, 1), "waking the writer leaves the reader alone");
        reader.wake();
        assert!(race.as_mut().poll(&mut cx).is_pending());
        assert_eq!((writer.polls.get(), reader.polls.get()), (5, 2));

        reader.done.set(true);
        reader.wake();
        match race.as_mut().poll(&mut cx) {
            Poll::Ready(Finished::Second(polls)) => assert_eq!(polls, 3),
            _ => panic!("the reader finished"),
        }
    }

    #[test]
    fn the_first_wins_when_it_finishes_and_the_second_was_not_woken() {
        let (writer, reader) = (Probe::new(), Probe::new());
        let mut race = pin!(race(writer.future(), reader.future()));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(race.as_mut().poll(&mut cx).is_pending());
        writer.done.set(true);
        reader.done.set(true);
        writer.wake();
        assert!(matches!(race.as_mut().poll(&mut cx), Poll::Ready(Finished::First(2))));
        assert_eq!(reader.polls.get(), 1);
    }

    #[test]
    fn waking_the_second_wakes_the_task_that_polls_the_race() {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let driver = Waker::from(flag.clone());
        let (writer, reader) = (Probe::new(), Probe::new());
        let mut race = pin!(race(writer.future(), reader.future()));
        assert!(race.as_mut().poll(&mut Context::from_waker(&driver)).is_pending());
        assert!(!flag.0.load(Ordering::Acquire));
        reader.wake();
        assert!(flag.0.load(Ordering::Acquire));
    }
}
