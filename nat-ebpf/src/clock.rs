//! The data plane's clock: CLOCK_BOOTTIME in ns, cached per CPU for a
//! timer tick, for session, mapping and fragment timestamps.
use aya_ebpf::helpers::generated::{bpf_jiffies64, bpf_ktime_get_boot_ns};

use crate::maps::CLOCK;

/// CLOCK_BOOTTIME in ns (so time spent suspended counts as idle time, as
/// it is), read at most once per timer tick per CPU: a stamp can be up to
/// a tick or two old, plenty for idle timeouts of seconds.
///
/// Reading the clock costs ~40 ns here (a VM's clock source), a third of a
/// whole translation. jiffies, which the verifier inlines into a plain
/// load, tells when the time can have moved on: each CPU keeps the time it
/// read with the jiffies value it read it at.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: helper without arguments (inlined by the verifier).
    let jiffies = unsafe { bpf_jiffies64() };
    let Some(slot) = CLOCK.get_ptr_mut(0) else {
        // SAFETY: helper without arguments.
        return unsafe { bpf_ktime_get_boot_ns() };
    };
    // SAFETY: per-CPU slot, only this CPU touches it while we run.
    unsafe {
        if (*slot)[0] != jiffies || (*slot)[1] == 0 {
            (*slot)[1] = bpf_ktime_get_boot_ns();
            (*slot)[0] = jiffies;
        }
        (*slot)[1]
    }
}
