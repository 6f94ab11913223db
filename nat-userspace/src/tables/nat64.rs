//! NAT64's tables as user space sees them. A NAT64 binding is a NAPT
//! binding whose inside address is a stand-in from 0.0.0.0/8
//! (`nat_common::nat64`); `NAT64_IDS` says which IPv6 host each stand-in
//! stands for, `NAT64_HOSTS` the other way. Here: naming the IPv6 host
//! behind a stand-in wherever a binding is shown ([`Hosts`]), and the
//! static NAT64 entries ([`StaticNat64`]): an IPv6 host with a stand-in
//! of its own that the static 1:1 table maps to a public IPv4 address, so
//! the data plane needs nothing beyond what it does for dynamic NAT64 and
//! static 1:1 NAT.
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context as _, bail};
use nat_common::{
    Ipv4Be,
    nat64::{Nat64Host, STAND_IN_SPACE, is_stand_in, stand_in},
};

use crate::tables::{
    Table, Tables, batch,
    static_map::{StaticTable, from_be},
};

/// The IPv6 host of each stand-in, read at once from `NAT64_IDS` (at most
/// `NAT64_HOSTS_MAX` entries): for the verbs that show many bindings.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    by_stand_in: HashMap<Ipv4Be, Ipv6Addr>,
}

impl Hosts {
    /// The hosts of the attachment in `dir`.
    pub fn read(dir: &Path) -> anyhow::Result<Hosts> {
        let ids = Tables::at(dir).nat64_ids()?.lookup_all()?;
        Ok(Hosts::from_pairs(
            ids.into_iter().map(|(s, h)| (s, Ipv6Addr::from(h.addr))),
        ))
    }

    /// Hosts from (stand-in, IPv6 address) pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Ipv4Be, Ipv6Addr)>) -> Hosts {
        Hosts {
            by_stand_in: pairs.into_iter().collect(),
        }
    }

    /// The IPv6 host `addr` stands for, if it is a stand-in that still
    /// has one.
    pub fn host(&self, addr: Ipv4Be) -> Option<Ipv6Addr> {
        if !is_stand_in(addr) {
            return None;
        }
        self.by_stand_in.get(&addr).copied()
    }

    /// An inside address as an operator knows it: the IPv6 host behind a
    /// stand-in, any other address (a stand-in already freed too) as it
    /// is.
    pub fn inside_addr(&self, addr: Ipv4Be) -> IpAddr {
        self.host(addr)
            .map_or(IpAddr::V4(from_be(addr)), IpAddr::V6)
    }

    /// An inside endpoint (`port_be` in network order): `10.0.0.2:5000`,
    /// or `[2001:db8::5]:40000` for a NAT64 host.
    pub fn endpoint(&self, addr: Ipv4Be, port_be: u16) -> String {
        endpoint(self.inside_addr(addr), u16::from_be(port_be))
    }
}

/// The IPv6 host stand-in `addr` stands for in the attachment in `dir`,
/// if it is a stand-in with one (one lookup: for the verbs that show a
/// binding or two).
pub fn host_of(dir: &Path, addr: Ipv4Be) -> anyhow::Result<Option<Ipv6Addr>> {
    if !is_stand_in(addr) {
        return Ok(None);
    }
    let ids = Tables::at(dir).nat64_ids()?;
    let host: Option<Nat64Host> = batch::lookup(ids.fd(), &addr)?;
    Ok(host.map(|h| Ipv6Addr::from(h.addr)))
}

/// [`Hosts::inside_addr`] with one lookup.
pub fn inside_addr_of(dir: &Path, addr: Ipv4Be) -> anyhow::Result<IpAddr> {
    Ok(host_of(dir, addr)?.map_or(IpAddr::V4(from_be(addr)), IpAddr::V6))
}

/// Where the IPv6 host behind a stand-in is looked up: the live table
/// (the agent's translation log, one lookup per NAT64 binding), or
/// [`Hosts`] read before.
pub trait HostOf {
    /// The IPv6 host `addr` stands for, if it is a stand-in with one.
    fn host_of(&self, addr: Ipv4Be) -> Option<Ipv6Addr>;
}

impl HostOf for Hosts {
    fn host_of(&self, addr: Ipv4Be) -> Option<Ipv6Addr> {
        self.host(addr)
    }
}

impl HostOf for Table<Ipv4Be, Nat64Host> {
    fn host_of(&self, addr: Ipv4Be) -> Option<Ipv6Addr> {
        if !is_stand_in(addr) {
            return None;
        }
        // A failed lookup names no host: the stand-in is shown as it is.
        let host: Option<Nat64Host> = batch::lookup(self.fd(), &addr).ok().flatten();
        host.map(|h| Ipv6Addr::from(h.addr))
    }
}

/// `addr:port`, an IPv6 address in brackets.
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

/// The stand-in of the IPv6 host `host` in the attachment in `dir`, if it
/// has one now.
pub fn stand_in_of(dir: &Path, host: Ipv6Addr) -> anyhow::Result<Option<Ipv4Be>> {
    let hosts = Tables::at(dir).nat64_hosts()?;
    Ok(batch::lookup::<[u8; 16], Ipv4Be>(
        hosts.fd(),
        &host.octets(),
    )?)
}

/// One static NAT64 entry as the tables hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticEntry {
    /// The IPv6 host; unspecified if `NAT64_IDS` lost it (an entry left
    /// half-written, which no setting can match, so a reload removes it).
    pub inside: Ipv6Addr,
    pub public: Ipv4Addr,
    pub stand_in: Ipv4Be,
}

/// The static NAT64 entries: `NAT64_IDS[stand-in] = {host, created 0}`,
/// `NAT64_HOSTS[host] = stand-in` and the static 1:1 table's
/// `stand-in <-> public` both ways. Stand-ins are numbered from the top
/// of the space down (0.255.255.254, ...), where the data plane's hashed
/// ones rarely land; it reserves its own with `BPF_NOEXIST` and probes past
/// these.
pub struct StaticNat64 {
    ids: Table<Ipv4Be, Nat64Host>,
    hosts: Table<[u8; 16], Ipv4Be>,
    table: StaticTable,
}

impl StaticNat64 {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let tables = Tables::at(dir);
        Ok(StaticNat64 {
            ids: tables.nat64_ids()?,
            hosts: tables.nat64_hosts()?,
            table: StaticTable::open(dir)?,
        })
    }

    /// Every entry, sorted by IPv6 host.
    pub fn list(&self) -> anyhow::Result<Vec<StaticEntry>> {
        let mut out = Vec::new();
        for (private, public) in self.table.list()? {
            let stand_in = crate::tables::static_map::to_be(private);
            if !is_stand_in(stand_in) {
                continue;
            }
            let host: Option<Nat64Host> = batch::lookup(self.ids.fd(), &stand_in)?;
            out.push(StaticEntry {
                inside: host.map_or(Ipv6Addr::UNSPECIFIED, |h| Ipv6Addr::from(h.addr)),
                public,
                stand_in,
            });
        }
        out.sort_by_key(|e| (e.inside, e.public));
        Ok(out)
    }

    /// Gives `inside` a stand-in of its own mapped to `public`. The stand-in
    /// is reserved first, the static 1:1 entries written next, and the host
    /// pointed at it last: its packets use the entry only once it is whole.
    /// A host that had a dynamic stand-in keeps that one's bindings until
    /// they expire; its new flows take the static one.
    pub fn add(&mut self, inside: Ipv6Addr, public: Ipv4Addr) -> anyhow::Result<Ipv4Be> {
        let host = Nat64Host {
            addr: inside.octets(),
            created: 0,
        };
        let stand_in = self
            .reserve(&host)
            .with_context(|| format!("static NAT64 {inside}={public}"))?;
        if let Err(e) = self.table.add_stand_in(stand_in, public) {
            let _ = batch::delete(self.ids.fd(), &[stand_in]);
            return Err(e.context(format!("static NAT64 {inside}={public}")));
        }
        batch::update(self.hosts.fd(), &inside.octets(), &stand_in)
            .with_context(|| format!("static NAT64 {inside}={public}: NAT64_HOSTS"))?;
        Ok(stand_in)
    }

    /// The highest stand-in nobody holds, reserved for `host`.
    fn reserve(&self, host: &Nat64Host) -> anyhow::Result<Ipv4Be> {
        // NAT64_IDS holds at most NAT64_HOSTS_MAX entries: that many
        // numbers taken at most before a free one.
        let tries = nat_common::nat64::NAT64_HOSTS_MAX + 1;
        for n in (1..=STAND_IN_SPACE).rev().take(tries as usize) {
            let s = stand_in(n);
            match batch::insert_new(self.ids.fd(), &s, host) {
                Ok(true) => return Ok(s),
                Ok(false) => continue,
                Err(e) if e.raw_os_error() == Some(libc::E2BIG) => {
                    bail!(
                        "{} is full ({} IPv6 hosts)",
                        nat_common::nat64::MAP_NAT64_IDS,
                        nat_common::nat64::NAT64_HOSTS_MAX
                    )
                }
                Err(e) => return Err(e.into()),
            }
        }
        bail!("no free stand-in address")
    }

    /// Removes `entry`, in the reverse order of [`StaticNat64::add`]: the
    /// host first (its new flows take a dynamic stand-in), then the static
    /// 1:1 entries, then the stand-in. The host's entry goes only if it
    /// still names this stand-in.
    pub fn remove(&mut self, entry: &StaticEntry) -> anyhow::Result<()> {
        let what = || format!("removing static NAT64 {}={}", entry.inside, entry.public);
        batch::delete_unchanged(
            self.hosts.fd(),
            &[(entry.inside.octets(), entry.stand_in)],
            |was, now| was == now,
        )
        .with_context(what)?;
        match self.table.remove(from_be(entry.stand_in)) {
            Ok(_) => {}
            // Half-written: only its stand-in was reserved.
            Err(e)
                if e.downcast_ref::<crate::tables::static_map::MappingError>()
                    .is_some() => {}
            Err(e) => return Err(e.context(what())),
        }
        batch::delete(self.ids.fd(), &[entry.stand_in]).with_context(what)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(s: &str) -> Ipv4Be {
        crate::tables::static_map::to_be(s.parse().unwrap())
    }

    #[test]
    fn stand_ins_are_shown_as_their_ipv6_host() {
        let s = stand_in(7);
        let hosts = Hosts::from_pairs([(s, "2001:db8::5".parse().unwrap())]);
        assert_eq!(hosts.endpoint(s, 40000u16.to_be()), "[2001:db8::5]:40000");
        assert_eq!(hosts.inside_addr(s).to_string(), "2001:db8::5");
        // Not a stand-in: as it is, even if it were listed.
        assert_eq!(
            hosts.endpoint(be("10.0.0.2"), 5000u16.to_be()),
            "10.0.0.2:5000"
        );
        // A stand-in that was freed: as it is.
        assert_eq!(hosts.endpoint(stand_in(8), 1u16.to_be()), "0.0.0.8:1");
        assert_eq!(stand_in(STAND_IN_SPACE), be("0.255.255.254"));
    }
}
