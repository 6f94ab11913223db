//! The stand-in of an IPv6 inside host: looked up, or reserved on the
//! host's first packet — `NAT64_IDS` first (`BPF_NOEXIST`: the stand-in is
//! ours), then `NAT64_HOSTS`; a CPU that loses the race for the same host
//! gives its stand-in back and takes the winner's.
use aya_ebpf::bindings::BPF_NOEXIST;
use nat_common::nat64::{Nat64Host, STAND_IN_PROBES, stand_in_probe};

use crate::maps::{NAT64_HOSTS, NAT64_IDS};

/// The stand-in of the host at `addr` (network order; `words` the same as
/// loaded), reserved now if it has none; `None` if no probe found a free
/// one (or the tables are full).
#[inline(always)]
pub fn stand_in(addr: &[u8; 16], words: &[u32; 4], now: u64) -> Option<u32> {
    // SAFETY: plain copy out of the map.
    if let Some(s) = unsafe { NAT64_HOSTS.get(addr) } {
        return Some(*s);
    }
    let host = Nat64Host {
        addr: *addr,
        created: now,
    };
    let mut i = 0;
    while i < STAND_IN_PROBES {
        let s = stand_in_probe(words, i);
        if NAT64_IDS.insert(&s, &host, BPF_NOEXIST as u64).is_ok() {
            if NAT64_HOSTS.insert(addr, &s, BPF_NOEXIST as u64).is_ok() {
                return Some(s);
            }
            // Another CPU gave this host a stand-in meanwhile.
            let _ = NAT64_IDS.remove(&s);
            // SAFETY: as above.
            return unsafe { NAT64_HOSTS.get(addr) }.copied();
        }
        i += 1;
    }
    None
}
