//! `xnat flows flush`: deleting sessions and their dynamic mappings (never
//! port forwards), optionally only those of one protocol or inside host.
//! A flushed flow that is still active simply gets a fresh binding on its
//! next outbound packet. A running agent notices the deleted mappings on
//! its next sweep and logs them in the translation log.
//!
//! A flush reads the tables ([`read`]) and then deletes what it read
//! ([`delete`]); the data plane and the agent's sweep keep working in
//! between. A mapping may expire meanwhile and its public endpoint go to a
//! new mapping, or its inside endpoint may get a new mapping: [`delete`]
//! removes only entries that still hold what was read, so it never takes
//! a newer binding's entry away.
use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::Path,
};

use nat_common::{EndpointKey, FilterKey, InsideEndpoint, MAPPING_FORWARD, Mapping, SessionKey};

use crate::{tables::Tables, tables::batch, tables::nat64, tables::static_map::to_be};

/// Which flows to flush (`None`: any).
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter {
    pub proto: Option<u8>,
    /// An inside host: IPv4, or IPv6 for a NAT64 host (whose bindings hold
    /// its stand-in).
    pub inside: Option<IpAddr>,
}

/// A [`Filter`] with its inside host as the tables hold it.
struct Resolved {
    proto: Option<u8>,
    inside: Option<u32>,
}

impl Resolved {
    fn matches(&self, proto: u8, inside_addr: u32) -> bool {
        self.proto.is_none_or(|p| p == proto) && self.inside.is_none_or(|a| a == inside_addr)
    }
}

/// What a flush deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Flushed {
    pub sessions: usize,
    pub mappings: usize,
}

/// What a flush read: the entries it is to delete, as they were then.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `SESSIONS` keys matching the filter.
    pub sessions: Vec<SessionKey>,
    /// Dynamic mappings (`NAPT_OUT` entries) matching the filter.
    pub mappings: Vec<(EndpointKey, Mapping)>,
}

pub fn flush(dir: &Path, filter: Filter) -> anyhow::Result<Flushed> {
    let snapshot = read(dir, filter)?;
    delete(dir, &snapshot)
}

/// Reads the sessions and dynamic mappings of the attachment in `dir` that
/// `filter` matches.
pub fn read(dir: &Path, filter: Filter) -> anyhow::Result<Snapshot> {
    let inside = match filter.inside {
        None => None,
        Some(IpAddr::V4(a)) => Some(to_be(a)),
        Some(IpAddr::V6(a)) => match nat64::stand_in_of(dir, a)? {
            Some(s) => Some(s),
            // No stand-in: the host holds no binding.
            None => return Ok(Snapshot::default()),
        },
    };
    let filter = Resolved {
        proto: filter.proto,
        inside,
    };
    let tables = Tables::at(dir);
    let sessions = tables
        .sessions()?
        .lookup_all()?
        .into_iter()
        .filter(|(k, _)| filter.matches(k.proto, k.inside_addr))
        .map(|(k, _)| k)
        .collect();
    let mappings = tables
        .napt_out()?
        .lookup_all()?
        .into_iter()
        .filter(|(k, m)| m.flags & MAPPING_FORWARD == 0 && filter.matches(k.proto, k.addr))
        .collect();
    Ok(Snapshot { sessions, mappings })
}

/// The `NAPT_IN` key of mapping `m` of inside endpoint `inside`: its public
/// endpoint.
fn public_key(inside: &EndpointKey, m: &Mapping) -> EndpointKey {
    EndpointKey {
        addr: m.addr,
        port: m.port,
        proto: inside.proto,
        _pad: 0,
    }
}

/// Deletes what `snapshot` read from the attachment in `dir`, as far as it
/// is still there unchanged.
pub fn delete(dir: &Path, snapshot: &Snapshot) -> anyhow::Result<Flushed> {
    let tables = Tables::at(dir);
    let sessions_map = tables.sessions()?;
    let out = tables.napt_out()?;
    let inb = tables.napt_in()?;
    let filter_map = tables.filter()?;
    let host_ports = tables.host_ports()?;

    // Sessions first: a packet racing the flush then finds its mapping and
    // makes a new session, or finds neither and makes both — never a
    // session that points at a deleted mapping for long.
    let sessions = batch::delete(sessions_map.fd(), &snapshot.sessions)?;

    // Outbound entries first so nothing refreshes a mapping, and only the
    // mappings still as read: one made since (the old one expired or was
    // flushed, and a packet made a new one for the inside endpoint) is not
    // the flushed binding.
    let deleted = batch::delete_unchanged(out.fd(), &snapshot.mappings, |was, now| {
        (now.addr, now.port, now.created) == (was.addr, was.port, was.created)
    })?;
    let mappings: Vec<(EndpointKey, Mapping)> =
        deleted.iter().map(|&i| snapshot.mappings[i]).collect();
    // A mapping gone before our delete was deleted by someone else (the
    // sweep, another flush), who releases its public endpoint: that
    // endpoint may already be a new mapping's.

    // Filter entries of the public endpoints we are releasing: until their
    // NAPT_IN entries go (below), no other mapping can hold them, so every
    // filter entry for them is the flushed mappings'.
    let public: HashSet<(u32, u16, u8)> = mappings
        .iter()
        .map(|(k, m)| (m.addr, m.port, k.proto))
        .collect();
    let filters: Vec<FilterKey> = filter_map
        .lookup_all()?
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| public.contains(&(k.public_addr, k.public_port, k.proto)))
        .collect();
    batch::delete(filter_map.fd(), &filters)?;

    // Then the public ports are released: each NAPT_IN entry re-read right
    // before its delete, and deleted only if it still names the inside
    // endpoint we flushed (see batch::delete_unchanged).
    let inbound: Vec<(EndpointKey, InsideEndpoint)> = mappings
        .iter()
        .map(|(k, m)| {
            let inside = InsideEndpoint {
                addr: k.addr,
                port: k.port,
                flags: m.flags,
            };
            (public_key(k, m), inside)
        })
        .collect();
    batch::delete_unchanged(inb.fd(), &inbound, |was, now| {
        (now.addr, now.port) == (was.addr, was.port)
    })?;

    // Per-host port counts (for --max-ports-per-host): take the deleted
    // mappings off, an IPv6 host's from its prefix's count; the agent's
    // sweep recounts exactly anyway.
    let mut per_host: HashMap<u32, u64> = HashMap::new();
    for (k, _) in &mappings {
        *per_host.entry(k.addr).or_default() += 1;
    }
    let per_host = super::cap_keys::aggregate(
        per_host,
        tables.nat64_ids()?.fd(),
        tables.nat64_hosts()?.fd(),
        super::cap_keys::host_prefix(dir)?,
    )?;
    let counts = host_ports.lookup_all()?;
    let mut zero = Vec::new();
    for (addr, held) in counts {
        if let Some(n) = per_host.get(&addr) {
            if held <= *n {
                zero.push(addr);
            } else {
                batch::update(host_ports.fd(), &addr, &(held - n))?;
            }
        }
    }
    batch::delete(host_ports.fd(), &zero)?;

    // First sessions go with their mapping.
    let firsts = mappings.iter().filter(|(_, m)| m.first.live != 0).count();
    Ok(Flushed {
        sessions: sessions + firsts,
        mappings: mappings.len(),
    })
}
