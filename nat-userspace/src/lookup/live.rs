//! The holders of a public endpoint in the live tables: a static 1:1
//! mapping of its address (every port), or the dynamic binding or port
//! forward whose `NAPT_IN` entry names the endpoint and whose mapping
//! points back to it. A NAT64 host is named by its IPv6 address, not its
//! stand-in.
use std::{net::Ipv4Addr, path::Path, time::SystemTime};

use nat_common::{EndpointKey, InsideEndpoint, MAPPING_FORWARD, Mapping};

use super::{Holder, Source};
use crate::{
    agent::clock,
    tables::{
        Tables, batch,
        flows::proto_name,
        nat64::{endpoint as inside_endpoint, inside_addr_of},
        static_map::to_be,
    },
};

/// Who holds `public:port` of each of `protos` (protocol numbers) in the
/// tables under `dir`; with `at`, only holders made by then.
pub fn holders(
    dir: &Path,
    public: Ipv4Addr,
    port: u16,
    protos: &[u8],
    at: Option<SystemTime>,
) -> anyhow::Result<Vec<Holder>> {
    let tables = Tables::at(dir);
    let endpoint = format!("{public}:{port}");
    let mut found = Vec::new();
    if let Some(private) = batch::lookup::<u32, u32>(tables.static_in()?.fd(), &to_be(public))? {
        found.push(Holder {
            proto: "any",
            public: endpoint.clone(),
            inside: inside_addr_of(dir, private)?.to_string(),
            source: Source::Static,
            ports: None,
            since: None,
            until: None,
        });
    }
    let (inb, out) = (tables.napt_in()?, tables.napt_out()?);
    for &proto in protos {
        let key = EndpointKey {
            addr: to_be(public),
            port: port.to_be(),
            proto,
            _pad: 0,
        };
        let Some(inside) = batch::lookup::<EndpointKey, InsideEndpoint>(inb.fd(), &key)? else {
            continue;
        };
        // Only a mapping that points back: an entry without one is a
        // mapping being made, or an orphan (held by no one).
        let Some(m) = batch::lookup::<EndpointKey, Mapping>(out.fd(), &inside.key(proto))? else {
            continue;
        };
        if (m.addr, m.port) != (key.addr, key.port) {
            continue;
        }
        let forward = m.flags & MAPPING_FORWARD != 0;
        let since = (!forward).then(|| clock::wall_time(m.created));
        if let (Some(at), Some(since)) = (at, since)
            && at < since
        {
            continue;
        }
        found.push(Holder {
            proto: proto_name(proto),
            public: endpoint.clone(),
            inside: inside_endpoint(inside_addr_of(dir, inside.addr)?, u16::from_be(inside.port)),
            source: if forward {
                Source::Forward
            } else {
                Source::Live
            },
            ports: None,
            since: since.map(clock::rfc3339),
            until: None,
        });
    }
    Ok(found)
}
