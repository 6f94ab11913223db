//! The port cap of NAT64 hosts counted per IPv6 prefix
//! (`--nat64-host-prefix`): the data plane counts every mapping of the
//! hosts of one /LEN on the `HOST_PORTS` entry of one *cap key*, the
//! stand-in of the prefix's own address (the host's address with the bits
//! past LEN zeroed; see `nat_common::nat64::cap_key_addr`), which it
//! reserves in `NAT64_IDS`/`NAT64_HOSTS` like a host's. Two jobs here:
//! * the sweep's recount adds the mappings of a prefix's hosts up on its
//!   cap key, as the data plane does ([`aggregate`]);
//! * the stand-in scan keeps a cap key while a host of its prefix holds a
//!   mapping ([`keys_in_use`]), though no mapping has it as its inside
//!   address: freed, the prefix's count would be lost, and the stand-in
//!   could go to another host, who would then share the prefix's cap.
//!
//! A host whose prefix has no cap key yet (the cap, or the prefix length,
//! came with a reload after its mappings were made) is counted on its own
//! stand-in: the data plane reserves the key at the prefix's next new
//! mapping, and the sweep after that counts the prefix there. So after
//! such a reload the cap is soft for a sweep, as after a reload that
//! switches the cap on.
use std::{
    collections::{HashMap, HashSet},
    hash::BuildHasher,
    io,
    os::fd::RawFd,
    path::Path,
};

use nat_common::{
    Ipv4Be,
    nat64::{Nat64Host, cap_key_addr, is_stand_in},
};

use crate::tables::{Tables, batch};

/// The host prefix of the attachment in `dir` (128 while NAT64 is off:
/// nothing to share).
pub fn host_prefix(dir: &Path) -> anyhow::Result<u8> {
    let c = Tables::at(dir).nat64()?.get(&0, 0)?;
    Ok(if c.enabled != 0 { c.host_prefix } else { 128 })
}

/// Whether hosts count per prefix at `len` (0 or 128 and above: each
/// address alone, as the data plane reads it).
pub fn per_prefix(len: u8) -> bool {
    len != 0 && len < 128
}

/// `held` (mappings per inside address) with the counts of NAT64 hosts
/// moved onto their prefix's cap key, reading `NAT64_IDS` (`ids`) and
/// `NAT64_HOSTS` (`hosts`) once each, only if a stand-in holds mappings.
pub fn aggregate<S: BuildHasher + Default>(
    held: HashMap<u32, u64, S>,
    ids: RawFd,
    hosts: RawFd,
    len: u8,
) -> io::Result<HashMap<u32, u64, S>> {
    if !per_prefix(len) || !held.keys().any(|a| is_stand_in(*a)) {
        return Ok(held);
    }
    let ids: HashMap<Ipv4Be, Nat64Host> = batch::lookup_all(ids)?.into_iter().collect();
    let hosts: HashMap<[u8; 16], Ipv4Be> = batch::lookup_all(hosts)?.into_iter().collect();
    let mut out = HashMap::with_capacity_and_hasher(held.len(), S::default());
    for (addr, n) in held {
        let key = if is_stand_in(addr) {
            ids.get(&addr)
                .and_then(|h| hosts.get(&cap_key_addr(&h.addr, len)))
                .copied()
                .unwrap_or(addr)
        } else {
            addr
        };
        *out.entry(key).or_default() += n;
    }
    Ok(out)
}

/// The IPv6 prefixes (as their cap keys' addresses) of the hosts whose
/// stand-in a mapping uses (`used`), among `ids` (all of `NAT64_IDS`):
/// the stand-ins of these addresses are cap keys to keep.
pub fn keys_in_use<S: BuildHasher>(
    ids: &[(Ipv4Be, Nat64Host)],
    used: &HashSet<u32, S>,
    len: u8,
) -> HashSet<[u8; 16]> {
    let mut keys = HashSet::new();
    if per_prefix(len) {
        for (s, h) in ids {
            if used.contains(s) {
                keys.insert(cap_key_addr(&h.addr, len));
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(a: &str) -> Nat64Host {
        Nat64Host {
            addr: a.parse::<std::net::Ipv6Addr>().unwrap().octets(),
            created: 0,
        }
    }

    #[test]
    fn prefixes_of_used_hosts_only() {
        let s = nat_common::nat64::stand_in;
        let ids = [
            (s(1), host("2001:db8:0:1::a")),
            (s(2), host("2001:db8:0:1::b")),
            (s(3), host("2001:db8:0:2::a")),
            (s(4), host("2001:db8:0:1::")),
        ];
        let used: HashSet<u32> = [s(1)].into_iter().collect();
        let keys = keys_in_use(&ids, &used, 64);
        assert_eq!(keys.len(), 1);
        assert!(keys.contains(&host("2001:db8:0:1::").addr));
        assert!(keys_in_use(&ids, &used, 128).is_empty());
        let keys = keys_in_use(&ids, &used, 48);
        assert!(keys.contains(&host("2001:db8::").addr));
    }
}
