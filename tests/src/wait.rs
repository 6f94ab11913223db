//! Bounded polling: every wait in the end-to-end tests has a deadline and a
//! name, and a timeout panics with that name instead of hanging the suite.

use std::time::{Duration, Instant};

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` until it returns true; panics after `timeout`, naming `what`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(timeout, what, || cond().then_some(()));
}

/// Polls `f` until it returns `Some`, and returns that value; panics after
/// `timeout`, naming `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// Deadline for something that must happen promptly: a log line written,
/// a counter counted, a flow listed, a packet delivered, a connect done.
/// Generous, because a 2-CPU machine shared with builds can stall any
/// process for seconds, and only a failing test waits this long.
pub const SOON: Duration = Duration::from_secs(30);
