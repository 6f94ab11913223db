//! The agent's expiry sweep (`nat_userspace::agent::expiry::Sweeper`, exactly the
//! code the agent runs every second) over pinned copies of a filled
//! instance's maps: wall time and this thread's CPU time of one sweep,
//! with every binding live (nothing to delete: the steady state) and with
//! every binding idle past its timeout (everything deleted). Twice: walked
//! in the kernel by `xnat_expire`, as the agent sweeps by default, and with
//! `--expiry-walk user` (the mappings read into user space in batches).
//! Meanwhile `stall` measures how long packets wait on the sweep's CPU.

use std::{path::Path, time::Instant};

use anyhow::{Result, ensure};
use nat_userspace::{agent::clock, agent::expiry::Sweeper};
use serde_json::{Value, json};

use super::{
    flows,
    instance::{self, Instance},
    measure::median,
    stall::Probe,
};

/// User and system CPU time of the calling thread, in ms.
fn thread_cpu_ms() -> (f64, f64) {
    // SAFETY: getrusage writes into our zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; RUSAGE_THREAD exists on Linux.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    (ms(ru.ru_utime), ms(ru.ru_stime))
}

struct One {
    wall_ms: f64,
    user_ms: f64,
    sys_ms: f64,
}

fn timed(sweeper: &Sweeper, now: u64) -> Result<(One, nat_userspace::agent::expiry::SweepReport)> {
    let cfg = instance::config(instance::pool().len() as u32);
    let (u0, s0) = thread_cpu_ms();
    let t0 = Instant::now();
    let report = sweeper.sweep(&cfg, now)?;
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    let (u1, s1) = thread_cpu_ms();
    Ok((
        One {
            wall_ms,
            user_ms: u1 - u0,
            sys_ms: s1 - s0,
        },
        report,
    ))
}

fn summary(v: &[One]) -> Value {
    let wall: Vec<f64> = v.iter().map(|o| o.wall_ms).collect();
    let user: Vec<f64> = v.iter().map(|o| o.user_ms).collect();
    let sys: Vec<f64> = v.iter().map(|o| o.sys_ms).collect();
    let cpu: Vec<f64> = v.iter().map(|o| o.user_ms + o.sys_ms).collect();
    json!({
        "wall_ms": median(&wall),
        "cpu_ms": median(&cpu),
        "user_ms": median(&user),
        "sys_ms": median(&sys),
        "samples_wall_ms": wall,
        "samples_cpu_ms": cpu,
    })
}

/// Sweeps `inst` (filled with `n` bulk bindings) `runs` times live, then
/// `runs` times with everything expired, refilling before each: reading
/// the mappings out, then walking in the kernel. Pins the maps under
/// `pin_dir` for the sweeper (removed when `inst` drops).
pub fn run(inst: &mut Instance, n: u32, runs: usize, pin_dir: &Path) -> Result<Value> {
    inst.pin_binding_maps(pin_dir)?;
    let mut probe = Probe::start()?;
    let user = Sweeper::open(pin_dir)?.walking_in_kernel(false);
    let (live, expired) = sweeps(inst, n, runs, &user, "user", &mut probe)?;
    let kernel = Sweeper::open(pin_dir)?.walking_in_kernel(true);
    flows::fill_bulk(inst, n, clock::now_ns())?;
    let (live_kernel, expired_kernel) = sweeps(inst, n, runs, &kernel, "kernel", &mut probe)?;
    Ok(json!({
        "bindings": n,
        "live": live,
        "expired": expired,
        "live_kernel": live_kernel,
        "expired_kernel": expired_kernel,
        "stall": probe.map(Probe::finish),
    }))
}

/// `runs` sweeps of `n` live bindings, then `runs` of `n` expired ones
/// (refilled before each but the first): their summaries.
fn sweeps(
    inst: &mut Instance,
    n: u32,
    runs: usize,
    sweeper: &Sweeper,
    walk: &str,
    probe: &mut Option<Probe>,
) -> Result<(Value, Value)> {
    let how = if walk == "kernel" {
        " in the kernel"
    } else {
        " in user space"
    };
    let mut timed = |now: u64| match probe {
        Some(p) => p.during(walk, || timed(sweeper, now)),
        None => timed(sweeper, now),
    };
    let mut live = Vec::new();
    for r in 0..runs {
        eprintln!(
            "xnat-bench: sweep of {n} live bindings{how}, run {}/{runs}",
            r + 1
        );
        let (one, rep) = timed(clock::now_ns())?;
        ensure!(
            rep.sessions_seen >= n as usize
                && rep.sessions_expired == 0
                && rep.mappings_expired == 0,
            "live sweep saw {} sessions and expired {} sessions / {} mappings (expected {n} and none)",
            rep.sessions_seen,
            rep.sessions_expired,
            rep.mappings_expired
        );
        live.push(one);
    }

    let mut expired = Vec::new();
    for r in 0..runs {
        if r > 0 {
            flows::fill_bulk(inst, n, clock::now_ns())?;
        }
        eprintln!(
            "xnat-bench: sweep of {n} expired bindings{how}, run {}/{runs}",
            r + 1
        );
        // A day later: every session, mapping and filter entry is idle past
        // its timeout.
        let later = clock::now_ns() + 86_400 * 1_000_000_000;
        let (one, rep) = timed(later)?;
        ensure!(
            rep.sessions_expired >= n as usize && rep.mappings_expired >= n as usize,
            "expired sweep removed {} sessions and {} mappings (expected {n} each)",
            rep.sessions_expired,
            rep.mappings_expired
        );
        expired.push(one);
    }
    Ok((summary(&live), summary(&expired)))
}
