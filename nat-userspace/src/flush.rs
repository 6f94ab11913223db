//! `xnat flows flush`: deleting sessions and their dynamic mappings (never
//! port forwards), optionally only those of one protocol or inside host.
//! A flushed flow that is still active simply gets a fresh binding on its
//! next outbound packet. A running agent notices the deleted mappings on
//! its next sweep and logs them in the translation log.
use std::{collections::HashMap, net::Ipv4Addr, path::Path};

use nat_common::{
    EndpointKey, FilterKey, MAP_FILTER, MAP_HOST_PORTS, MAP_NAPT_IN, MAP_NAPT_OUT, MAP_SESSIONS,
    MAPPING_FORWARD, Mapping, Session, SessionKey,
};

use crate::{batch, pinned::RawMap, static_map::to_be};

/// Which flows to flush (`None`: any).
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter {
    pub proto: Option<u8>,
    pub inside: Option<Ipv4Addr>,
}

impl Filter {
    fn matches(&self, proto: u8, inside_addr: u32) -> bool {
        self.proto.is_none_or(|p| p == proto) && self.inside.is_none_or(|a| to_be(a) == inside_addr)
    }
}

/// What a flush deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Flushed {
    pub sessions: usize,
    pub mappings: usize,
}

pub fn flush(dir: &Path, filter: Filter) -> anyhow::Result<Flushed> {
    let sessions_map = RawMap::open(dir, MAP_SESSIONS)?;
    let out = RawMap::open(dir, MAP_NAPT_OUT)?;
    let inb = RawMap::open(dir, MAP_NAPT_IN)?;
    let filter_map = RawMap::open(dir, MAP_FILTER)?;
    let host_ports = RawMap::open(dir, MAP_HOST_PORTS)?;

    let sessions: Vec<SessionKey> = batch::lookup_all::<SessionKey, Session>(sessions_map.fd())?
        .into_iter()
        .filter(|(k, _)| filter.matches(k.proto, k.inside_addr))
        .map(|(k, _)| k)
        .collect();
    let mappings: Vec<(EndpointKey, Mapping)> =
        batch::lookup_all::<EndpointKey, Mapping>(out.fd())?
            .into_iter()
            .filter(|(k, m)| m.flags & MAPPING_FORWARD == 0 && filter.matches(k.proto, k.addr))
            .collect();

    // Sessions first: a packet racing the flush then finds its mapping and
    // makes a new session, or finds neither and makes both — never a
    // session that points at a deleted mapping for long. First sessions go
    // with their mapping.
    let firsts = mappings.iter().filter(|(_, m)| m.first.live != 0).count();
    let mut done = Flushed {
        sessions: batch::delete(sessions_map.fd(), &sessions)? + firsts,
        ..Flushed::default()
    };
    let out_keys: Vec<EndpointKey> = mappings.iter().map(|(k, _)| *k).collect();
    let in_keys: Vec<EndpointKey> = mappings
        .iter()
        .map(|(k, m)| EndpointKey {
            addr: m.addr,
            port: m.port,
            proto: k.proto,
            _pad: 0,
        })
        .collect();
    // Outbound entry first so nothing refreshes the mapping, then the
    // public port is released.
    done.mappings = batch::delete(out.fd(), &out_keys)?;
    batch::delete(inb.fd(), &in_keys)?;

    let public: std::collections::HashSet<(u32, u16, u8)> =
        in_keys.iter().map(|k| (k.addr, k.port, k.proto)).collect();
    let filters: Vec<FilterKey> = batch::lookup_all::<FilterKey, u64>(filter_map.fd())?
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| public.contains(&(k.public_addr, k.public_port, k.proto)))
        .collect();
    batch::delete(filter_map.fd(), &filters)?;

    // Per-host port counts (for --max-ports-per-host): take the deleted
    // mappings off; the agent's sweep recounts exactly anyway.
    let mut per_host: HashMap<u32, u64> = HashMap::new();
    for (k, _) in &mappings {
        *per_host.entry(k.addr).or_default() += 1;
    }
    let counts = batch::lookup_all::<u32, u64>(host_ports.fd())?;
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
    Ok(done)
}
