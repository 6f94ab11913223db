//! Timing BPF_PROG_TEST_RUN, two ways.
//!
//! * **repeat**: one syscall running the program `repeat` times on one
//!   frame (valid only where every iteration does the same work; see
//!   `flows.rs`). ns/packet is the calling thread's CPU time over the
//!   syscall (CLOCK_THREAD_CPUTIME_ID) divided by `repeat`: sub-ns
//!   resolution, and time the thread spends preempted is not counted. The
//!   kernel's own figure (`duration`, whole ns, also excluding reschedules)
//!   is kept alongside as a cross-check.
//! * **loop**: one syscall per frame with `repeat = 1`, for work that
//!   cannot repeat on one buffer (creating a new binding each time, a
//!   different flow each time). The kernel's `duration` of each call covers
//!   the program run plus the fixed cost of its timer (reading the clock,
//!   disabling bottom halves); the benchmark subtracts the same loop run
//!   with the no-op program and adds back the no-op's repeat figure, so
//!   loop and repeat figures are comparable.

use anyhow::{Result, ensure};
use nat_common::Counter;

use super::instance::{Instance, Prog};

/// What a run must have done, checked from the STATS counters.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Each packet bumps each of these counters exactly once.
    pub each: Vec<Counter>,
    /// These counters must not move.
    pub unchanged: Vec<Counter>,
    /// The verdict every packet must get.
    pub verdict: Option<u32>,
}

/// One timed run.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// ns per packet (thread CPU time for repeat runs, mean kernel duration
    /// for loops).
    pub ns: f64,
    /// The kernel's figure: `duration` of a repeat run (whole ns), or the
    /// mean of the loop's durations.
    pub kernel_ns: f64,
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn check(
    inst: &Instance,
    prog: Prog,
    before: &[u64],
    n: u64,
    expect: &Expect,
    what: &str,
) -> Result<()> {
    let after = inst.counters()?;
    for &c in &expect.each {
        let d = after[c as usize] - before[c as usize];
        ensure!(
            d == n,
            "{what} ({}): counter {c:?} grew by {d}, expected {n}: the measured path is not the intended one",
            prog.name()
        );
    }
    for c in &expect.unchanged {
        let d = after[*c as usize] - before[*c as usize];
        ensure!(
            d == 0,
            "{what} ({}): counter {c:?} grew by {d}, expected 0",
            prog.name()
        );
    }
    Ok(())
}

/// Runs `prog` `repeat` times on `frame` in one syscall.
pub fn repeat(
    inst: &Instance,
    prog: Prog,
    frame: &[u8],
    repeat: u32,
    expect: &Expect,
    what: &str,
) -> Result<Sample> {
    let before = inst.counters()?;
    let t0 = thread_cpu_ns();
    let res = inst.test_run(prog, frame, None, repeat)?;
    let cpu = thread_cpu_ns() - t0;
    if let Some(v) = expect.verdict {
        ensure!(
            res.return_value == v,
            "{what} ({}): verdict {} instead of {v}",
            prog.name(),
            res.return_value
        );
    }
    check(inst, prog, &before, repeat as u64, expect, what)?;
    Ok(Sample {
        ns: cpu as f64 / repeat as f64,
        kernel_ns: res.duration.as_nanos() as f64,
    })
}

/// Runs `prog` once on each of `frames`, one syscall each.
pub fn each(
    inst: &Instance,
    prog: Prog,
    frames: &[Vec<u8>],
    expect: &Expect,
    what: &str,
) -> Result<Sample> {
    each_on(inst, prog, frames, None, expect, what)
}

/// The same, each frame arriving on the device `ifindex` (see
/// [`Instance::test_run_on`]).
pub fn each_on(
    inst: &Instance,
    prog: Prog,
    frames: &[Vec<u8>],
    ifindex: Option<u32>,
    expect: &Expect,
    what: &str,
) -> Result<Sample> {
    ensure!(!frames.is_empty(), "{what}: no frames");
    let before = inst.counters()?;
    let mut total_ns: u128 = 0;
    for f in frames {
        let res = inst.test_run_on(prog, f, ifindex, None, 1)?;
        if let Some(v) = expect.verdict
            && res.return_value != v
        {
            anyhow::bail!(
                "{what} ({}): verdict {} instead of {v}; counters moved so far: {}",
                prog.name(),
                res.return_value,
                moved(&before, &inst.counters()?)
            );
        }
        total_ns += res.duration.as_nanos();
    }
    check(inst, prog, &before, frames.len() as u64, expect, what)?;
    let mean = total_ns as f64 / frames.len() as f64;
    Ok(Sample {
        ns: mean,
        kernel_ns: mean,
    })
}

/// The counters that differ between two reads, as `Name +n`.
fn moved(before: &[u64], after: &[u64]) -> String {
    Counter::ALL
        .iter()
        .filter_map(|&c| {
            let d = after[c as usize].wrapping_sub(before[c as usize]);
            (d != 0).then(|| format!("{c:?} +{d}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The median of `v` (mean of the middle two for even lengths).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// A tiny xorshift generator (picking random flows; no crate needed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-enough in `0..n`.
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next() % n as u64) as u32
    }
}
