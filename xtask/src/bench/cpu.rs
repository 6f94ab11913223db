//! What the CPUs did during a measurement (/proc/stat, /proc/interrupts),
//! and which CPU the gateway gets, for the end-to-end parts of the bench.

use std::{fs, mem, thread};

use anyhow::{Result, bail};

pub(super) fn cpus() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPU the gateway gets (RPS), if there are two or more.
pub(super) fn gw_cpu() -> Option<usize> {
    (cpus() >= 2).then(|| cpus() - 1)
}

/// The jiffies fields of each CPU's line in /proc/stat (user, nice,
/// system, idle, iowait, irq, softirq, steal, ...).
fn per_cpu_stat() -> Vec<Vec<u64>> {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .collect()
}

/// Busy and total jiffies of each CPU (from /proc/stat).
pub(super) fn cpu_times() -> Vec<(u64, u64)> {
    per_cpu_stat()
        .iter()
        .map(|f| {
            let total: u64 = f.iter().take(8).sum();
            let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

/// Jiffies each CPU was stolen by the hypervisor (another guest or the
/// host ran on it), and its total, from /proc/stat: on a shared VM this
/// is time the gateway lost without being idle.
pub(super) fn steal_times() -> Vec<(u64, u64)> {
    per_cpu_stat()
        .iter()
        .map(|f| (f.get(7).copied().unwrap_or(0), f.iter().take(8).sum()))
        .collect()
}

/// Function-call IPIs each CPU has received (the `CAL` line of
/// /proc/interrupts): RPS wakes an idle CPU's input queue with one, and in
/// a VM each costs its sender an exit to the hypervisor.
pub(super) fn call_ipis() -> Vec<u64> {
    let text = fs::read_to_string("/proc/interrupts").unwrap_or_default();
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix("CAL:"))
        .map(|rest| {
            rest.split_whitespace()
                .map_while(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn busy_pct(a: &[(u64, u64)], b: &[(u64, u64)], cpu: usize) -> f64 {
    match (a.get(cpu), b.get(cpu)) {
        (Some(x), Some(y)) if y.1 > x.1 => 100.0 * (y.0 - x.0) as f64 / (y.1 - x.1) as f64,
        _ => f64::NAN,
    }
}

/// Sets the CPUs process (or thread) `pid` may run on.
fn set_affinity(pid: i32, cpus: impl IntoIterator<Item = usize>) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = mem::zeroed();
        for cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(pid, mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!(
            "sched_setaffinity of pid {pid}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// A process kept on one CPU until dropped, then free to run on any again.
pub(super) struct Pinned(i32);

impl Pinned {
    pub(super) fn to(pid: i32, cpu: usize) -> Result<Pinned> {
        set_affinity(pid, [cpu])?;
        Ok(Pinned(pid))
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Err(e) = set_affinity(self.0, 0..cpus()) {
            eprintln!("xtask: bench: {e:#}");
        }
    }
}

/// CPU time process `pid` has used so far (user + system, all its
/// threads), s; None if it is gone.
pub(super) fn process_cpu_secs(pid: i32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces, but ends
    // with the last ')'): state is field 3, utime and stime 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_sec > 0).then(|| ticks as f64 / per_sec as f64)
}
