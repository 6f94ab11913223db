//! The clock the data plane stamps bindings with: CLOCK_BOOTTIME, so time
//! spent suspended counts as idle time. The programs read it once per timer
//! tick per CPU (nat-ebpf/src/session.rs), so a stamp may be a tick or two
//! older than the packet; idle timeouts are seconds.

/// The data plane's clock now, in ns.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
