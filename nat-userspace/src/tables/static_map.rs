//! The static 1:1 table as user space sees it: two pinned hash maps kept as
//! mirror images (private→public for egress, public→private for ingress).
use std::{net::Ipv4Addr, path::Path};

use anyhow::Context as _;
use aya::maps::{Array, HashMap, MapData, MapError};
use nat_common::Ipv4Be;

use crate::tables::Tables;

/// Flag for BPF_MAP_UPDATE_ELEM: fail if the key exists.
const BPF_NOEXIST: u64 = 1;

/// Why a mapping cannot be added; callers print these as they are.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("private address {private} is already mapped (to {public})")]
    PrivateTaken { private: Ipv4Addr, public: Ipv4Addr },
    #[error("public address {public} is already mapped (to {private})")]
    PublicTaken { public: Ipv4Addr, private: Ipv4Addr },
    #[error("{0} cannot be mapped: {1}")]
    Unusable(Ipv4Addr, &'static str),
    #[error("private address {0} is not mapped")]
    NotMapped(Ipv4Addr),
}

pub fn to_be(addr: Ipv4Addr) -> Ipv4Be {
    u32::from_ne_bytes(addr.octets())
}

pub fn from_be(addr: Ipv4Be) -> Ipv4Addr {
    Ipv4Addr::from(addr.to_ne_bytes())
}

/// Rejects addresses that can never be one end of a 1:1 mapping.
pub fn check_usable(addr: Ipv4Addr) -> Result<(), MappingError> {
    let why = if addr.is_unspecified() {
        "it is the unspecified address"
    } else if addr.octets()[0] == 0 {
        // Never an address on the wire; NAT64 numbers its IPv6 hosts
        // there (nat_common::nat64), and the static table holds those.
        "it is in 0.0.0.0/8 (\"this network\"), where NAT64 numbers its IPv6 hosts"
    } else if addr.is_broadcast() {
        "it is the broadcast address"
    } else if addr.is_multicast() {
        "it is a multicast address"
    } else if addr.is_loopback() {
        "it is a loopback address"
    } else {
        return Ok(());
    };
    Err(MappingError::Unusable(addr, why))
}

pub struct StaticTable {
    out: HashMap<MapData, Ipv4Be, Ipv4Be>,
    inb: HashMap<MapData, Ipv4Be, Ipv4Be>,
    /// 1 tells the programs both tables are empty (they skip the lookups).
    empty: Array<MapData, u32>,
}

fn get(map: &HashMap<MapData, Ipv4Be, Ipv4Be>, key: Ipv4Be) -> anyhow::Result<Option<Ipv4Be>> {
    match map.get(&key, 0) {
        Ok(v) => Ok(Some(v)),
        Err(MapError::KeyNotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl StaticTable {
    /// Opens the pinned table of an attachment directory.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let tables = Tables::at(dir);
        Ok(Self {
            out: tables.static_out()?.into_hash_map()?,
            inb: tables.static_in()?.into_hash_map()?,
            empty: tables.static_empty()?,
        })
    }

    /// Tells the programs whether to look the tables up at all. Called
    /// after every change; `add` also clears the flag before it inserts,
    /// so a new mapping is never invisible, not even for a packet.
    pub fn sync_presence(&mut self) -> anyhow::Result<()> {
        let empty = self.out.keys().next().is_none() && self.inb.keys().next().is_none();
        self.set_empty(empty)
    }

    fn set_empty(&mut self, empty: bool) -> anyhow::Result<()> {
        self.empty
            .set(0, empty as u32, 0)
            .context("updating STATIC_EMPTY")
    }

    /// Adds `private` ↔ `public`. The inbound entry goes in first so replies
    /// to the first translated packet already find their way back.
    pub fn add(&mut self, private: Ipv4Addr, public: Ipv4Addr) -> anyhow::Result<()> {
        check_usable(private)?;
        self.insert(private, public)
    }

    /// Adds a static NAT64 entry's half in this table: `stand_in` (a NAT64
    /// stand-in, which [`StaticTable::add`] refuses as a private address:
    /// see `tables::nat64`) ↔ `public`.
    pub fn add_stand_in(&mut self, stand_in: Ipv4Be, public: Ipv4Addr) -> anyhow::Result<()> {
        anyhow::ensure!(
            nat_common::nat64::is_stand_in(stand_in),
            "{} is not a NAT64 stand-in",
            from_be(stand_in)
        );
        self.insert(from_be(stand_in), public)
    }

    fn insert(&mut self, private: Ipv4Addr, public: Ipv4Addr) -> anyhow::Result<()> {
        check_usable(public)?;
        if let Some(p) = get(&self.out, to_be(private))? {
            return Err(MappingError::PrivateTaken {
                private,
                public: from_be(p),
            }
            .into());
        }
        if let Some(q) = get(&self.inb, to_be(public))? {
            return Err(MappingError::PublicTaken {
                public,
                private: from_be(q),
            }
            .into());
        }
        self.set_empty(false)?;
        if let Err(e) = self.inb.insert(to_be(public), to_be(private), BPF_NOEXIST) {
            let _ = self.sync_presence();
            return Err(anyhow::Error::from(e).context(format!("adding {public} -> {private}")));
        }
        if let Err(e) = self.out.insert(to_be(private), to_be(public), BPF_NOEXIST) {
            // Another xnat raced us; leave the table as we found it.
            let _ = self.inb.remove(&to_be(public));
            let _ = self.sync_presence();
            return Err(anyhow::Error::from(e).context(format!("adding {private} -> {public}")));
        }
        Ok(())
    }

    /// Removes the mapping of `private`, returning its public address. The
    /// outbound entry goes first so nothing new leaves translated.
    pub fn remove(&mut self, private: Ipv4Addr) -> anyhow::Result<Ipv4Addr> {
        let Some(public) = get(&self.out, to_be(private))? else {
            return Err(MappingError::NotMapped(private).into());
        };
        self.out.remove(&to_be(private))?;
        match self.inb.remove(&public) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(e.into()),
        }
        self.sync_presence()?;
        Ok(from_be(public))
    }

    /// All entries, sorted by private address: the static 1:1 mappings and
    /// the static NAT64 entries (their private address a stand-in).
    pub fn list(&self) -> anyhow::Result<Vec<(Ipv4Addr, Ipv4Addr)>> {
        let mut out = Vec::new();
        for item in self.out.iter() {
            let (k, v) = item?;
            out.push((from_be(k), from_be(v)));
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn be_round_trip_matches_packet_order() {
        let x = a("10.0.0.2");
        assert_eq!(to_be(x).to_ne_bytes(), [10, 0, 0, 2]);
        assert_eq!(from_be(to_be(x)), x);
    }
}
