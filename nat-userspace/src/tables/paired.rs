//! Paired pooling across a pool change (RFC 4787 REQ-2). A host's pool
//! address is a hash of its address over the pool (`nat_common::pool_index`),
//! so nothing needs remembering while the pool stays; a reload that changes
//! the pool moves the hash's choice, and the hosts holding bindings must
//! keep the address they have. Reconcile pins them in `HOST_POOL`, with the
//! data plane recording new hosts meanwhile (`PINNED_RECORDING`), then
//! leaves `PINNED_LOOKUP` for as long as pins remain.
use std::collections::BTreeMap;

use nat_common::{EndpointKey, Ipv4Be, MAPPING_FORWARD, Mapping, pool_index};

use crate::tables::{Tables, batch};

/// Pins in `HOST_POOL` the hosts that hold bindings now (see [`pins`])
/// for the pool about to be `pool`; returns how many could not be pinned
/// because the table is full (those hosts may move).
pub fn pin_live_hosts(tables: &Tables, pool: &[Ipv4Be]) -> anyhow::Result<usize> {
    let bindings = tables.napt_out()?.lookup_all()?;
    let host_pool = tables.host_pool()?;
    let mut full = 0;
    for (host, addr) in pins(&bindings, pool) {
        if batch::update(host_pool.fd(), &host, &addr).is_err() {
            full += 1;
        }
    }
    Ok(full)
}

/// Whether any host is pinned.
pub fn any_pinned(tables: &Tables) -> anyhow::Result<bool> {
    Ok(!tables.host_pool()?.lookup_all()?.is_empty())
}

/// The `HOST_POOL` entries that keep the hosts of `bindings` (`NAPT_OUT`'s
/// entries) on their pool address under `pool` (network order, in slot
/// order): each host whose dynamic bindings use an address of `pool` that
/// the hash over `pool` would not give it. Port forwards are the
/// operator's choice of address, not the host's, and do not count.
pub fn pins(bindings: &[(EndpointKey, Mapping)], pool: &[Ipv4Be]) -> Vec<(Ipv4Be, Ipv4Be)> {
    let mut held: BTreeMap<Ipv4Be, Ipv4Be> = BTreeMap::new();
    for (k, m) in bindings {
        if m.flags & MAPPING_FORWARD == 0 {
            held.entry(k.addr).or_insert(m.addr);
        }
    }
    held.into_iter()
        .filter(|(host, addr)| {
            let hashed = pool.get(pool_index(*host, pool.len() as u32) as usize);
            pool.contains(addr) && hashed != Some(addr)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(a: [u8; 4]) -> Ipv4Be {
        u32::from_ne_bytes(a)
    }

    fn binding(host: Ipv4Be, public: Ipv4Be, flags: u16) -> (EndpointKey, Mapping) {
        (
            EndpointKey {
                addr: host,
                port: 5000u16.to_be(),
                proto: 17,
                _pad: 0,
            },
            Mapping {
                addr: public,
                flags,
                ..Default::default()
            },
        )
    }

    #[test]
    fn only_hosts_the_new_hash_would_move_are_pinned() {
        let pool: Vec<Ipv4Be> = (1..=4).map(|i| be([198, 51, 100, i])).collect();
        let hosts: Vec<Ipv4Be> = (2..40).map(|i| be([10, 0, 0, i])).collect();
        // Every host on the first address, as a one-address pool put them.
        let bindings: Vec<_> = hosts.iter().map(|h| binding(*h, pool[0], 0)).collect();
        let got = pins(&bindings, &pool);
        let moved: Vec<Ipv4Be> = hosts
            .iter()
            .copied()
            .filter(|h| pool_index(*h, 4) != 0)
            .collect();
        assert!(!moved.is_empty() && moved.len() < hosts.len());
        assert_eq!(got, {
            let mut v: Vec<_> = moved.iter().map(|h| (*h, pool[0])).collect();
            v.sort();
            v
        });
    }

    #[test]
    fn forwards_and_addresses_outside_the_pool_are_not_pinned() {
        let pool = vec![be([198, 51, 100, 1]), be([198, 51, 100, 2])];
        let host = (2..40)
            .map(|i| be([10, 0, 0, i]))
            .find(|h| pool_index(*h, 2) == 1)
            .unwrap();
        let gone = be([198, 51, 100, 9]);
        assert!(pins(&[binding(host, pool[0], MAPPING_FORWARD)], &pool).is_empty());
        assert!(pins(&[binding(host, gone, 0)], &pool).is_empty());
        assert_eq!(pins(&[binding(host, pool[0], 0)], &pool), [(host, pool[0])]);
    }
}
