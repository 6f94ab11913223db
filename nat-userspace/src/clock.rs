//! The clock the data plane stamps bindings with: CLOCK_MONOTONIC_COARSE,
//! which the programs read through bpf_ktime_get_coarse_ns. It is the
//! kernel's last timer tick (a few ms of resolution, plenty for idle
//! timeouts of seconds), and reading it costs a fraction of the precise
//! clock's ~40 ns per packet.

/// The data plane's clock now, in ns.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
