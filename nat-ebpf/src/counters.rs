//! Per-CPU counters: no atomics needed, user space sums the CPUs.
use nat_common::Counter;

use crate::maps::STATS;

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
