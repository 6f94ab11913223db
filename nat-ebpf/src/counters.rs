//! Per-CPU counters: no atomics needed, user space sums the CPUs.
use nat_common::Counter;

use crate::{
    maps::STATS,
    verdict::{Direction, Verdict},
};

#[inline(always)]
pub fn add(counter: Counter, value: u64) {
    if let Some(slot) = STATS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { *slot += value };
    }
}

#[inline(always)]
pub fn bump(counter: Counter) {
    add(counter, 1);
}

/// Counts a packet translated going `dir`, and its `bytes` (the
/// datagram's bytes present in the packet, `Ipv4::bytes`).
#[inline(always)]
pub fn translated(dir: Direction, bytes: u64) {
    match dir {
        Direction::Egress => {
            bump(Counter::EgressTranslated);
            add(Counter::EgressBytes, bytes);
        }
        Direction::Ingress => {
            bump(Counter::IngressTranslated);
            add(Counter::IngressBytes, bytes);
        }
    }
}

/// Counts a packet dropped for `reason`; TC's drop code.
#[inline(always)]
pub fn drop_tc(reason: Counter) -> i32 {
    bump(reason);
    aya_ebpf::bindings::TC_ACT_SHOT
}

/// Counts a packet dropped for `reason`, and drops it.
#[inline(always)]
pub fn drop(reason: Counter) -> Verdict {
    bump(reason);
    Verdict::Drop
}
