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

#[cfg(test)]
mod tests {
    use super::*;

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
}
