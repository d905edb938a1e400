//! Two futures run side by side until one finishes, each polled only when it was woken.
//!
//! A connection's driver reads and writes at once. With `tokio::select!` every wake polls both
//! halves: each delivery, which wakes only the writer, also polled the reader, its socket and its
//! heartbeat and drain timers. Here each half gets a waker of its own that marks it before waking
//! the driver, and a poll of the driver polls only the marked halves (BENCHMARKS.md, change 14).

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use futures_util::task::AtomicWaker;

/// Which future finished first, with its output.
pub enum Finished<A, B> {
    First(A),
    Second(B),
}

/// Polls `first` and `second` until one of them finishes; the other is left as it is, to be
/// driven on or dropped by the caller.
pub fn race<A: Future + Unpin, B: Future + Unpin>(first: A, second: B) -> Race<A, B> {
    Race { first: Half::new(first), second: Half::new(second) }
}

pub struct Race<A, B> {
    first: Half<A>,
    second: Half<B>,
}

/// One of the two futures, and the waker that marks it.
struct Half<F> {
    future: F,
    wakeup: Arc<Wakeup>,
    waker: Waker,
}

struct Wakeup {
    woken: AtomicBool,
    driver: AtomicWaker,
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.driver.wake();
    }
}

impl<F: Future + Unpin> Half<F> {
    fn new(future: F) -> Self {
        // Woken to start with: the first poll polls both.
        let wakeup = Arc::new(Wakeup { woken: AtomicBool::new(true), driver: AtomicWaker::new() });
        Self { future, waker: Waker::from(wakeup.clone()), wakeup }
    }

    /// Polls the future if it was woken since its last poll.
    fn poll_if_woken(&mut self, driver: &Waker) -> Poll<F::Output> {
        // Register before taking the mark: a wake in between then wakes the driver again.
        self.wakeup.driver.register(driver);
        if !self.wakeup.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        Pin::new(&mut self.future).poll(&mut Context::from_waker(&self.waker))
    }
}

impl<A: Future + Unpin, B: Future + Unpin> Future for Race<A, B> {
    type Output = Finished<A::Output, B::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(output) = self.first.poll_if_woken(cx.waker()) {
            return Poll::Ready(Finished::First(output));
        }
        if let Poll::Ready(output) = self.second.poll_if_woken(cx.waker()) {
            return Poll::Ready(Finished::Second(output));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::Cell, future::poll_fn, pin::pin, rc::Rc};

    use super::*;

    /// A future that counts its polls and finishes when `done` is set, waking itself on demand
    /// through the waker it was last polled with.
    fn counted(polls: Rc<Cell<u32>>, done: Rc<Cell<bool>>, waker: Rc<Cell<Option<Waker>>>) -> impl Future<Output = u32> + Unpin {
        poll_fn(move |cx| {
            polls.set(polls.get() + 1);
            waker.set(Some(cx.waker().clone()));
            if done.get() { Poll::Ready(polls.get()) } else { Poll::Pending }
        })
    }

    #[test]
    fn a_wake_polls_only_the_future_it_woke_and_the_first_to_finish_wins() {
        let (first_polls, second_polls) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (first_done, second_done) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
        let (first_waker, second_waker) = (Rc::new(Cell::new(None)), Rc::new(Cell::new(None)));
        let first = counted(first_polls.clone(), first_done.clone(), first_waker.clone());
        let second = counted(second_polls.clone(), second_done.clone(), second_waker.clone());
        let mut race = pin!(race(first, second));
        let mut cx = Context::from_waker(Waker::noop());

        assert!(race.as_mut().poll(&mut cx).is_pending());
        assert_eq!((first_polls.get(), second_polls.get()), (1, 1), "the first poll polls both");
        assert!(race.as_mut().poll(&mut cx).is_pending());
        assert_eq!((first_polls.get(), second_polls.get()), (1, 1), "nothing woke either");

        for _ in 0..3 {
            second_waker.take().expect("polled").wake();
            assert!(race.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!((first_polls.get(), second_polls.get()), (1, 4), "only the second was woken");

        first_done.set(true);
        second_done.set(true);
        first_waker.take().expect("polled").wake();
        match race.as_mut().poll(&mut cx) {
            Poll::Ready(Finished::First(polls)) => assert_eq!(polls, 2),
            _ => panic!("the first finished"),
        }
        assert_eq!(second_polls.get(), 4, "the second was not woken, so not polled");
    }

    #[test]
    fn a_wake_wakes_the_task_that_polls_the_race() {
        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::Release);
            }
        }
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let driver = Waker::from(flag.clone());
        let waker = Rc::new(Cell::new(None));
        let first = counted(Rc::default(), Rc::default(), waker.clone());
        let second = counted(Rc::default(), Rc::default(), Rc::default());
        let mut race = pin!(race(first, second));
        assert!(race.as_mut().poll(&mut Context::from_waker(&driver)).is_pending());
        assert!(!flag.0.load(Ordering::Acquire));
        waker.take().expect("polled").wake();
        assert!(flag.0.load(Ordering::Acquire));
    }
}
