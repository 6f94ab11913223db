//! The stand-in of an IPv6 inside host: looked up, or reserved on the
//! host's first packet — `NAT64_IDS` first (`BPF_NOEXIST`: the stand-in is
//! ours), then `NAT64_HOSTS`; a CPU that loses the race for the same host
//! gives its stand-in back and takes the winner's.
use aya_ebpf::bindings::BPF_NOEXIST;
use nat_common::nat64::{Nat64Host, STAND_IN_PROBES, cap_key_addr, stand_in_probe};

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

/// The `HOST_PORTS` key of the stand-in `s`'s port cap: the stand-in of
/// its host's address with the bits past `--nat64-host-prefix` zeroed, so
/// every address of one /64 (say) counts on one counter — reserved here
/// like a host's if it has none yet (the agent keeps it while a host of
/// the prefix holds a mapping). `s` itself when hosts count alone (or NAT64
/// is off, or `s` has no host: nothing to share). `None`: no stand-in was
/// free for the prefix. Only on the allocation path, with a cap set.
#[inline(always)]
pub fn cap_key(s: u32, now: u64) -> Option<u32> {
    let Some(cfg) = super::config() else {
        return Some(s);
    };
    let len = cfg.host_prefix;
    if len == 0 || len >= 128 {
        return Some(s);
    }
    // SAFETY: plain copy out of the map.
    let Some(addr) = (unsafe { NAT64_IDS.get(&s) }).map(|h| h.addr) else {
        return Some(s);
    };
    // (A host at the prefix's own address finds its stand-in there.)
    let key = cap_key_addr(&addr, len);
    let words = [
        u32::from_ne_bytes([key[0], key[1], key[2], key[3]]),
        u32::from_ne_bytes([key[4], key[5], key[6], key[7]]),
        u32::from_ne_bytes([key[8], key[9], key[10], key[11]]),
        u32::from_ne_bytes([key[12], key[13], key[14], key[15]]),
    ];
    stand_in(&key, &words, now)
}
