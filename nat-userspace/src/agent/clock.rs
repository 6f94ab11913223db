//! The clock the data plane stamps bindings with: CLOCK_BOOTTIME, so time
//! spent suspended counts as idle time. The programs read it once per timer
//! tick per CPU (nat-ebpf/src/session.rs), so a stamp may be a tick or two
//! older than the packet; idle timeouts are seconds.

/// The wall-clock time of a data-plane timestamp (CLOCK_BOOTTIME ns).
pub fn wall_time(stamp_ns: u64) -> std::time::SystemTime {
    let ago = now_ns().saturating_sub(stamp_ns);
    std::time::SystemTime::now() - std::time::Duration::from_nanos(ago)
}

/// RFC 3339, UTC, milliseconds: how the translation log and `xnat lookup`
/// write times.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

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
