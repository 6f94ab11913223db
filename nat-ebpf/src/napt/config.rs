//! What NAPT owns: whether it is on (a pool is configured), the pool's
//! public addresses and the inside prefixes it translates. Every NAPT
//! stage, allocation and hairpinning ask here.
use aya_ebpf::maps::lpm_trie::Key;
use nat_common::NatConfig;

use crate::maps::{CONFIG, INTERNAL, POOL};

/// The configuration, or `None` when NAPT is off (no pool). Read in place
/// (not copied to the stack): a packet reads only the few fields it needs.
#[inline(always)]
pub fn config() -> Option<&'static NatConfig> {
    let cfg = CONFIG.get(0)?;
    (cfg.pool_len != 0).then_some(cfg)
}

/// Whether NAPT is on and `addr` is an inside address it translates.
#[inline(always)]
pub fn translates_source(addr: u32) -> bool {
    config().is_some() && is_internal(addr)
}

/// Whether `addr` lies in one of the inside prefixes (`INTERNAL`).
#[inline(always)]
pub fn is_internal(addr: u32) -> bool {
    INTERNAL.get(Key::new(32, addr)).is_some()
}

/// The host-numbering offset of the inside prefix holding `addr`
/// (`nat_common::deterministic::host_offset`), if one does.
#[inline(always)]
pub fn host_offset(addr: u32) -> Option<u32> {
    INTERNAL.get(Key::new(32, addr)).copied()
}

/// Whether `addr` is one of the pool's public addresses.
#[inline(always)]
pub fn in_pool(cfg: &NatConfig, addr: u32) -> bool {
    let mut i = 0;
    while i < nat_common::POOL_MAX {
        if i >= cfg.pool_len {
            return false;
        }
        if POOL.get(i).is_some_and(|a| *a == addr) {
            return true;
        }
        i += 1;
    }
    false
}
