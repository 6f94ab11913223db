//! Deterministic allocation (RFC 7422) seen from the settings: which pool
//! address and ports an inside address has, and who has a public port —
//! from the NAPT settings alone (a config file, or the live CONFIG), with
//! the arithmetic of `nat_common::deterministic` that the data plane uses.
use std::net::Ipv4Addr;

use nat_common::deterministic::{Layout, Share};

use super::napt::{NaptSettings, Prefix};

/// One inside address's share, as addresses and ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostShare {
    pub inside: Ipv4Addr,
    pub public: Ipv4Addr,
    pub lo: u16,
    pub hi: u16,
}

/// The layout of deterministic NAPT settings.
pub struct Deterministic {
    layout: Layout,
    /// Inside prefixes in ascending order, with the host index of their
    /// first address.
    prefixes: Vec<(Prefix, u64)>,
    /// The pool in slot order (ascending).
    pool: Vec<Ipv4Addr>,
}

impl Deterministic {
    /// The layout of `n`; `None` unless its allocation is deterministic.
    pub fn of(n: &NaptSettings) -> Option<Self> {
        let layout = n.deterministic_layout()?;
        let prefixes = n.numbered_internal();
        let mut pool = n.pool.clone();
        pool.sort();
        Some(Deterministic {
            layout,
            prefixes,
            pool,
        })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Inside addresses the layout numbers.
    pub fn hosts(&self) -> u64 {
        self.prefixes.iter().map(|(p, _)| p.size()).sum()
    }

    /// `inside`'s share, if it is an inside address.
    pub fn share_of(&self, inside: Ipv4Addr) -> Option<HostShare> {
        let (p, first) = self.prefixes.iter().find(|(p, _)| p.contains(inside))?;
        let index = first + u64::from(u32::from(inside) - u32::from(p.addr));
        self.host_share(index)
    }

    /// The share of host `index`.
    pub fn host_share(&self, index: u64) -> Option<HostShare> {
        let Share { slot, lo, hi } = self.layout.share(u32::try_from(index).ok()?)?;
        Some(HostShare {
            inside: self.inside_of(index)?,
            public: *self.pool.get(slot as usize)?,
            lo,
            hi,
        })
    }

    /// The inside address whose range holds `port` on `public`, if any.
    pub fn holder(&self, public: Ipv4Addr, port: u16) -> Option<HostShare> {
        let slot = self.pool.iter().position(|a| *a == public)?;
        let index = self.layout.holder(slot as u32, port)?;
        self.host_share(u64::from(index))
    }

    fn inside_of(&self, index: u64) -> Option<Ipv4Addr> {
        let (p, first) = self
            .prefixes
            .iter()
            .find(|(p, first)| index >= *first && index < first + p.size())?;
        Some(Ipv4Addr::from(u32::from(p.addr) + (index - first) as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::napt::Allocation;

    fn settings() -> NaptSettings {
        let internal: Vec<Prefix> = vec![
            "192.168.0.0/31".parse().unwrap(),
            "10.0.0.0/30".parse().unwrap(),
        ];
        let pool: Vec<Ipv4Addr> = vec![
            "198.51.100.2".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        ];
        let l = Layout::plan(6, 2, 1024, 65535, None).unwrap();
        NaptSettings {
            internal,
            pool,
            allocation: Allocation::Deterministic {
                hosts_per_addr: l.hosts_per_addr,
                ports_per_host: l.ports_per_host,
            },
            ..NaptSettings::default()
        }
    }

    #[test]
    fn numbers_prefixes_and_pool_in_ascending_order() {
        let d = Deterministic::of(&settings()).unwrap();
        assert_eq!(d.hosts(), 6);
        // 10.0.0.0/30 is hosts 0-3, 192.168.0.0/31 hosts 4-5; three per
        // pool address, 21504 ports each.
        let s = d.share_of("10.0.0.0".parse().unwrap()).unwrap();
        assert_eq!(
            (s.public, s.lo, s.hi),
            ("198.51.100.1".parse().unwrap(), 1024, 22527)
        );
        let s = d.share_of("192.168.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            (s.public, s.lo),
            ("198.51.100.2".parse().unwrap(), 1024 + 2 * 21504)
        );
        assert_eq!(d.share_of("10.0.0.4".parse().unwrap()), None);
        for i in 0..6 {
            let s = d.host_share(i).unwrap();
            assert_eq!(d.holder(s.public, s.lo), Some(s));
            assert_eq!(d.holder(s.public, s.hi), Some(s));
        }
        assert_eq!(d.holder("198.51.100.1".parse().unwrap(), 80), None);
        assert_eq!(d.holder("198.51.100.9".parse().unwrap(), 2000), None);
    }
}
