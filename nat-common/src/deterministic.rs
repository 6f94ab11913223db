//! Deterministic NAT (RFC 7422, `--allocation deterministic`): every inside
//! address has a fixed pool address and a fixed range of ports, a function
//! of the inside prefixes, the pool and the port range alone, so no log is
//! needed to say who held a public port.
//!
//! The layout: the inside addresses are numbered across the inside
//! prefixes in ascending order (host index 0 is the first address of the
//! lowest prefix); the pool addresses are taken in ascending order;
//! `hosts_per_addr` consecutive hosts share one pool address, each with
//! `ports_per_host` consecutive ports from the start of the port range.
//! Host `i` gets pool address `i / hosts_per_addr` and ports
//! `port_min + (i % hosts_per_addr) * ports_per_host` onwards. The same
//! arithmetic serves the data plane (a new mapping's range), `xnat check`
//! (the layout), `xnat lookup` (public endpoint → host, from a config
//! file alone) and the reference model.

use crate::NatConfig;

/// `NatConfig::allocation`: ports picked freely from the whole range
/// (paired pooling by hash; the default).
pub const ALLOCATION_DYNAMIC: u32 = 0;
/// `NatConfig::allocation`: RFC 7422 deterministic ranges.
pub const ALLOCATION_DETERMINISTIC: u32 = 1;

/// One deterministic layout, as CONFIG holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub pool_len: u32,
    pub port_min: u16,
    pub hosts_per_addr: u32,
    pub ports_per_host: u32,
}

/// A host's share: pool slot (index into the pool in ascending order) and
/// its ports `lo..=hi` (host order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    pub slot: u32,
    pub lo: u16,
    pub hi: u16,
}

/// Why no layout fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Fewer than one port per host: hosts per pool address, ports in
    /// the range.
    TooManyHosts { hosts_per_addr: u64, ports: u32 },
    /// The ports per host asked for leave room for `fits` hosts, fewer
    /// than there are.
    TooFewRanges { fits: u64, hosts: u64 },
}

impl Layout {
    /// The layout in `cfg` (meaningful when its allocation is
    /// deterministic).
    #[inline(always)]
    pub fn of(cfg: &NatConfig) -> Self {
        Layout {
            pool_len: cfg.pool_len,
            port_min: cfg.port_min,
            hosts_per_addr: cfg.det_hosts_per_addr,
            ports_per_host: cfg.det_ports_per_host,
        }
    }

    /// The layout for `hosts` inside addresses over `pool_len` pool
    /// addresses and ports `port_min..=port_max`: with `ports_per_host`
    /// given, as many hosts per pool address as such ranges fit; otherwise
    /// the hosts spread evenly over the pool and each gets the most ports
    /// that leaves.
    pub fn plan(
        hosts: u64,
        pool_len: u32,
        port_min: u16,
        port_max: u16,
        ports_per_host: Option<u32>,
    ) -> Result<Self, PlanError> {
        let ports = u32::from(port_max) - u32::from(port_min) + 1;
        let pool = u64::from(pool_len.max(1));
        let (hosts_per_addr, ports_per_host) = match ports_per_host {
            Some(pph) => {
                let per_addr = u64::from(ports / pph.max(1));
                if per_addr * pool < hosts || per_addr == 0 {
                    return Err(PlanError::TooFewRanges {
                        fits: per_addr * pool,
                        hosts,
                    });
                }
                // Only as many per address as the hosts need.
                (per_addr.min(hosts.div_ceil(pool)).max(1), pph)
            }
            None => {
                let per_addr = hosts.div_ceil(pool).max(1);
                if per_addr > u64::from(ports) {
                    return Err(PlanError::TooManyHosts {
                        hosts_per_addr: per_addr,
                        ports,
                    });
                }
                (per_addr, ports / per_addr as u32)
            }
        };
        Ok(Layout {
            pool_len,
            port_min,
            hosts_per_addr: hosts_per_addr as u32,
            ports_per_host,
        })
    }

    /// Host `index`'s share; `None` beyond the pool (or for an empty
    /// layout).
    #[inline(always)]
    pub fn share(&self, index: u32) -> Option<Share> {
        if self.hosts_per_addr == 0 || self.ports_per_host == 0 {
            return None;
        }
        let slot = index / self.hosts_per_addr;
        if slot >= self.pool_len {
            return None;
        }
        let lo = u32::from(self.port_min) + (index % self.hosts_per_addr) * self.ports_per_host;
        let hi = lo + self.ports_per_host - 1;
        if hi > 65535 {
            return None;
        }
        Some(Share {
            slot,
            lo: lo as u16,
            hi: hi as u16,
        })
    }

    /// The host index whose share holds `port` on pool slot `slot`, if
    /// any (ports past the last range belong to nobody).
    pub fn holder(&self, slot: u32, port: u16) -> Option<u32> {
        if self.hosts_per_addr == 0 || self.ports_per_host == 0 || slot >= self.pool_len {
            return None;
        }
        let off = u32::from(port).checked_sub(u32::from(self.port_min))?;
        let k = off / self.ports_per_host;
        (k < self.hosts_per_addr).then(|| slot * self.hosts_per_addr + k)
    }
}

/// `INTERNAL`'s value for an inside prefix whose first address (host
/// order) is `base` and whose first host index is `first_host`: added to
/// an address in the prefix (host order, wrapping), it gives the
/// address's host index. One word, so the lookup that says "inside" also
/// numbers the host.
pub const fn host_offset(base: u32, first_host: u32) -> u32 {
    first_host.wrapping_sub(base)
}

/// The host index of `addr` (host order) in a prefix with offset `offset`
/// ([`host_offset`]).
#[inline(always)]
pub const fn host_index(addr: u32, offset: u32) -> u32 {
    addr.wrapping_add(offset)
}

/// How many ports of a deterministic mapping's sequence ([`port_probe`])
/// keep the inside port's parity; the rest take the other parity.
pub const PORT_PROBES_PRESERVING: u32 = 16;
/// How many ports of the sequence a new mapping tries before it is refused
/// as "ports exhausted".
pub const PORT_PROBES: u32 = 32;

/// Where in a host's range the port sequence of inside port `want`
/// (protocol `proto`) starts: a fixed hash, the same on every gateway with
/// the same layout — what lets a backup gateway give a flow it never saw
/// the public port the failed one gave it (multiplicative hashing, high
/// bits).
#[inline(always)]
pub const fn port_hash(want: u16, proto: u8) -> u32 {
    (((want as u32) << 8) | proto as u32).wrapping_mul(0x9E37_79B1) >> 12
}

/// Probe `i` (`0..PORT_PROBES`) of the ports a deterministic mapping of
/// inside port `want` tries in its host's range `lo..=hi`, when the inside
/// port itself is not in the range or not free: a fixed sequence — ports
/// of `want`'s parity (RFC 4787 REQ-3; any for ICMP, `keep_parity` false)
/// stepping on from [`port_hash`], then ports of the other parity. A
/// function of the inside port and the layout alone, so two gateways with
/// the same configuration pick the same port for a flow as long as the
/// same earlier ports of its sequence are taken.
#[inline(always)]
pub fn port_probe(lo: u16, hi: u16, want: u16, keep_parity: bool, proto: u8, i: u32) -> u16 {
    let (lo, hi) = (lo as u32, hi as u32);
    let h = port_hash(want, proto);
    if keep_parity {
        // Ports of `want`'s parity first, then of the other.
        let same = i < PORT_PROBES_PRESERVING;
        let parity = (want as u32 & 1) ^ u32::from(!same);
        let first = lo + ((lo ^ parity) & 1);
        if first <= hi {
            let n = (hi - first) / 2 + 1;
            let step = if same {
                i
            } else {
                i.wrapping_sub(PORT_PROBES_PRESERVING)
            };
            // `checked_rem`: no division-by-zero panic path for BPF.
            return (first + 2 * h.wrapping_add(step).checked_rem(n).unwrap_or(0)) as u16;
        }
    }
    let n = hi - lo + 1;
    (lo + h.wrapping_add(i).checked_rem(n).unwrap_or(0)) as u16
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn spreads_hosts_evenly_and_inverts() {
        // 64 hosts, 2 pool addresses, ports 1024-65535.
        let l = Layout::plan(64, 2, 1024, 65535, None).unwrap();
        assert_eq!((l.hosts_per_addr, l.ports_per_host), (32, 2016));
        let s = l.share(0).unwrap();
        assert_eq!((s.slot, s.lo, s.hi), (0, 1024, 3039));
        let s = l.share(33).unwrap();
        assert_eq!((s.slot, s.lo, s.hi), (1, 3040, 5055));
        assert_eq!(l.share(64), None);
        for i in 0..64 {
            let s = l.share(i).unwrap();
            assert_eq!(l.holder(s.slot, s.lo), Some(i));
            assert_eq!(l.holder(s.slot, s.hi), Some(i));
        }
        assert_eq!(l.holder(0, 1023), None);
        assert_eq!(
            l.holder(0, 65535),
            Some(31),
            "the ranges fill the port range"
        );
        assert_eq!(l.holder(2, 2000), None, "no third pool address");
        // 100 hosts on one address: 645 ports each, the last 12 unused.
        let l = Layout::plan(100, 1, 1024, 65535, None).unwrap();
        assert_eq!((l.hosts_per_addr, l.ports_per_host), (100, 645));
        assert_eq!(l.holder(0, 65523), Some(99));
        assert_eq!(l.holder(0, 65524), None, "past the last range");
    }

    #[test]
    fn given_ports_per_host() {
        // 64 ranges of 1000 fit in 1024-65535; 50 hosts need 50 of them.
        let l = Layout::plan(50, 1, 1024, 65535, Some(1000)).unwrap();
        assert_eq!((l.hosts_per_addr, l.ports_per_host), (50, 1000));
        let l = Layout::plan(200, 4, 1024, 65535, Some(1000)).unwrap();
        assert_eq!((l.hosts_per_addr, l.ports_per_host), (50, 1000));
        assert_eq!(
            Layout::plan(1000, 1, 1024, 65535, Some(1000)),
            Err(PlanError::TooFewRanges {
                fits: 64,
                hosts: 1000
            })
        );
        assert!(matches!(
            Layout::plan(1 << 24, 1, 1024, 65535, None),
            Err(PlanError::TooManyHosts { .. })
        ));
    }

    #[test]
    fn offsets_number_hosts_across_prefixes() {
        let a = 0x0a00_0000; // 10.0.0.0/30: hosts 0-3
        let b = 0xc0a8_0000; // 192.168.0.0/31: hosts 4-5
        assert_eq!(host_index(a + 3, host_offset(a, 0)), 3);
        assert_eq!(host_index(b + 1, host_offset(b, 4)), 5);
    }

    #[test]
    fn port_sequence_is_fixed_in_range_and_keeps_parity_first() {
        let (lo, hi) = (3040u16, 5055u16);
        for want in [0u16, 1, 1023, 40000, 40001, 65535] {
            let seq: Vec<u16> = (0..PORT_PROBES)
                .map(|i| port_probe(lo, hi, want, true, 6, i))
                .collect();
            assert!(seq.iter().all(|&p| (lo..=hi).contains(&p)), "{seq:?}");
            let (same, other) = seq.split_at(PORT_PROBES_PRESERVING as usize);
            assert!(same.iter().all(|p| p & 1 == want & 1), "{same:?}");
            assert!(other.iter().all(|p| p & 1 != want & 1), "{other:?}");
            let mut distinct = seq.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), seq.len(), "no port tried twice");
            let again: Vec<u16> = (0..PORT_PROBES)
                .map(|i| port_probe(lo, hi, want, true, 6, i))
                .collect();
            assert_eq!(seq, again, "a function of its arguments");
        }
        // Different inside ports start at different places; protocols too.
        assert_ne!(
            port_probe(lo, hi, 40000, true, 6, 0),
            port_probe(lo, hi, 40002, true, 6, 0)
        );
        assert_ne!(
            port_probe(lo, hi, 40000, true, 6, 0),
            port_probe(lo, hi, 40000, true, 17, 0)
        );
    }

    #[test]
    fn port_sequence_in_tiny_ranges() {
        // One port: every probe is it; two: parity, then the other.
        for i in 0..PORT_PROBES {
            assert_eq!(port_probe(2000, 2000, 41, true, 17, i), 2000);
            assert_eq!(port_probe(2000, 2000, 41, false, 1, i), 2000);
        }
        assert_eq!(port_probe(2000, 2001, 41, true, 17, 0), 2001);
        assert_eq!(port_probe(2000, 2001, 41, true, 17, 16), 2000);
        // ICMP: any port of the range, consecutive from the hash.
        let seq: Vec<u16> = (0..8)
            .map(|i| port_probe(100, 163, 7, false, 1, i))
            .collect();
        assert!(seq.iter().all(|p| (100..=163).contains(p)));
        assert!(
            seq.windows(2)
                .all(|w| w[1] == w[0] + 1 || (w[0] == 163 && w[1] == 100))
        );
    }
}
