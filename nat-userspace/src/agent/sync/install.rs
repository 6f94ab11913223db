//! Installing a mapping a peer announced: checked against this gateway's
//! NAPT settings, then written as the data plane writes a new mapping
//! (`NAPT_IN` first, with `BPF_NOEXIST`, as the reservation of the public
//! endpoint; then `NAPT_OUT`), both flagged `MAPPING_PEER`.
use std::{net::Ipv4Addr, path::Path};

use aya::maps::{HashMap, MapData, MapError};
use nat_common::{EndpointKey, InsideEndpoint, MAPPING_PEER, Mapping};

use super::wire::Record;
use crate::{
    settings::deterministic::Deterministic,
    settings::napt::{NaptSettings, PortRange, Prefix},
    tables::Tables,
    tables::static_map::from_be,
};

const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;

/// What a record may name: the NAPT settings in force here.
pub struct Rules {
    internal: Vec<Prefix>,
    pool: Vec<Ipv4Addr>,
    ports: PortRange,
    deterministic: Option<Deterministic>,
}

impl Rules {
    pub fn of(n: &NaptSettings) -> Rules {
        Rules {
            internal: n.internal.clone(),
            pool: n.pool.clone(),
            ports: n.ports,
            deterministic: Deterministic::of(n),
        }
    }

    /// `Err(reason)` (the `reason` label of `xnat_sync_rejected_total`)
    /// for a record this gateway would never have made: an unknown
    /// protocol, an inside address outside `--internal`, a public address
    /// outside the pool, a port outside `--ports`, or, under deterministic
    /// allocation, a public endpoint outside the inside address's share.
    pub fn check(&self, r: &Record) -> Result<(), &'static str> {
        if ![1, 6, 17].contains(&r.proto) {
            return Err("proto");
        }
        let inside = from_be(r.inside_addr);
        if !self.internal.iter().any(|p| p.contains(inside)) {
            return Err("inside");
        }
        let public = from_be(r.public_addr);
        if !self.pool.contains(&public) {
            return Err("pool");
        }
        let port = u16::from_be(r.public_port);
        if port < self.ports.min() || port > self.ports.max() {
            return Err("port");
        }
        if let Some(d) = &self.deterministic {
            match d.share_of(inside) {
                Some(s) if s.public == public && (s.lo..=s.hi).contains(&port) => {}
                _ => return Err("range"),
            }
        }
        Ok(())
    }
}

/// What became of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new peer mapping.
    Installed,
    /// The same peer mapping, unused here: its `last_seen` moved to now.
    Refreshed,
    /// The same mapping, made or used here: left as it is.
    Unchanged,
    /// The public endpoint is held by another inside endpoint, or the
    /// inside endpoint is mapped elsewhere here.
    Conflict,
    /// A table is full.
    Full,
}

/// The mapping tables, held open by the receiver.
pub struct Installer {
    out: HashMap<MapData, EndpointKey, Mapping>,
    inb: HashMap<MapData, EndpointKey, InsideEndpoint>,
}

fn errno(e: &MapError) -> Option<i32> {
    match e {
        MapError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    }
}

fn full(e: &MapError) -> bool {
    matches!(errno(e), Some(libc::E2BIG | libc::ENOSPC | libc::ENOMEM))
}

impl Installer {
    pub fn open(dir: &Path) -> anyhow::Result<Installer> {
        let t = Tables::at(dir);
        Ok(Installer {
            out: t.napt_out()?.into_hash_map()?,
            inb: t.napt_in()?.into_hash_map()?,
        })
    }

    /// Installs or refreshes `r` (checked already) at data-plane time
    /// `now`.
    pub fn install(&mut self, r: &Record, now: u64) -> anyhow::Result<Outcome> {
        let key = |addr, port| EndpointKey {
            addr,
            port,
            proto: r.proto,
            _pad: 0,
        };
        let pk = key(r.public_addr, r.public_port);
        let ik = key(r.inside_addr, r.inside_port);
        let inside = InsideEndpoint {
            addr: r.inside_addr,
            port: r.inside_port,
            flags: MAPPING_PEER,
        };
        match self.inb.insert(pk, inside, BPF_NOEXIST) {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::EEXIST) => return self.existing(r, pk, ik, now),
            Err(e) if full(&e) => return Ok(Outcome::Full),
            Err(e) => return Err(e.into()),
        }
        let mapping = Mapping {
            addr: r.public_addr,
            port: r.public_port,
            flags: MAPPING_PEER,
            created: now,
            last_seen: now,
            first: Default::default(),
        };
        match self.out.insert(ik, mapping, BPF_NOEXIST) {
            Ok(()) => Ok(Outcome::Installed),
            Err(e) => {
                // The reservation goes: the inside endpoint is mapped to
                // another public endpoint here, or the table is full.
                let _ = self.inb.remove(&pk);
                if errno(&e) == Some(libc::EEXIST) {
                    Ok(Outcome::Conflict)
                } else if full(&e) {
                    Ok(Outcome::Full)
                } else {
                    Err(e.into())
                }
            }
        }
    }

    /// The public endpoint is reserved already: the same mapping (refresh
    /// it if it is an unused peer copy), or a conflict.
    fn existing(
        &mut self,
        r: &Record,
        pk: EndpointKey,
        ik: EndpointKey,
        now: u64,
    ) -> anyhow::Result<Outcome> {
        let held = match self.inb.get(&pk, 0) {
            Ok(v) => v,
            // Gone meanwhile (expired): the next announcement installs it.
            Err(MapError::KeyNotFound) => return Ok(Outcome::Conflict),
            Err(e) => return Err(e.into()),
        };
        if (held.addr, held.port) != (r.inside_addr, r.inside_port) {
            return Ok(Outcome::Conflict);
        }
        let mut m = match self.out.get(&ik, 0) {
            Ok(m) => m,
            // A reservation whose mapping is not written yet (the data
            // plane between its two inserts), or an orphan the sweep frees.
            Err(MapError::KeyNotFound) => return Ok(Outcome::Conflict),
            Err(e) => return Err(e.into()),
        };
        if (m.addr, m.port) != (r.public_addr, r.public_port) {
            return Ok(Outcome::Conflict);
        }
        if m.flags & MAPPING_PEER == 0 || m.first.live != 0 {
            return Ok(Outcome::Unchanged);
        }
        m.last_seen = m.last_seen.max(now);
        match self.out.insert(ik, m, BPF_EXIST) {
            Ok(()) => Ok(Outcome::Refreshed),
            // Expired between the read and the write.
            Err(MapError::SyscallError(s)) if s.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(Outcome::Conflict)
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::napt::Allocation;
    use crate::tables::static_map::to_be;

    fn rec(proto: u8, inside: &str, iport: u16, public: &str, pport: u16) -> Record {
        Record {
            proto,
            inside_addr: to_be(inside.parse().unwrap()),
            inside_port: iport.to_be(),
            public_addr: to_be(public.parse().unwrap()),
            public_port: pport.to_be(),
        }
    }

    fn settings(allocation: Allocation) -> NaptSettings {
        NaptSettings {
            internal: vec!["10.0.0.0/24".parse().unwrap()],
            pool: vec![
                "203.0.113.2".parse().unwrap(),
                "203.0.113.3".parse().unwrap(),
            ],
            ports: PortRange::new(1024, 65535).unwrap(),
            allocation,
            ..NaptSettings::default()
        }
    }

    #[test]
    fn dynamic_checks_protocol_inside_pool_and_ports() {
        let r = Rules::of(&settings(Allocation::Dynamic));
        assert_eq!(
            r.check(&rec(17, "10.0.0.2", 5000, "203.0.113.2", 2000)),
            Ok(())
        );
        assert_eq!(r.check(&rec(1, "10.0.0.2", 7, "203.0.113.3", 1024)), Ok(()));
        assert_eq!(
            r.check(&rec(47, "10.0.0.2", 5000, "203.0.113.2", 2000)),
            Err("proto")
        );
        assert_eq!(
            r.check(&rec(6, "10.0.1.2", 5000, "203.0.113.2", 2000)),
            Err("inside")
        );
        assert_eq!(
            r.check(&rec(6, "10.0.0.2", 5000, "203.0.113.9", 2000)),
            Err("pool")
        );
        assert_eq!(
            r.check(&rec(6, "10.0.0.2", 5000, "203.0.113.2", 1023)),
            Err("port")
        );
    }

    /// 256 hosts over two addresses, 504 ports each: host 2 has ports
    /// 1024 + 2 * 504 = 2032 ..= 2535 of the first address.
    #[test]
    fn deterministic_checks_the_hosts_share() {
        let r = Rules::of(&settings(Allocation::Deterministic {
            hosts_per_addr: 128,
            ports_per_host: 504,
        }));
        assert_eq!(
            r.check(&rec(6, "10.0.0.2", 5000, "203.0.113.2", 2032)),
            Ok(())
        );
        assert_eq!(
            r.check(&rec(6, "10.0.0.2", 5000, "203.0.113.2", 2535)),
            Ok(())
        );
        for (addr, port) in [
            ("203.0.113.2", 2031),
            ("203.0.113.2", 2536),
            ("203.0.113.3", 2032),
        ] {
            assert_eq!(
                r.check(&rec(6, "10.0.0.2", 5000, addr, port)),
                Err("range"),
                "{addr}:{port}"
            );
        }
    }
}
