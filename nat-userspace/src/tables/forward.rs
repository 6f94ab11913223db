//! Port forwards: a public endpoint that always leads to an inside
//! endpoint. Stored as a mapping pair flagged MAPPING_FORWARD, so the data
//! plane needs no extra lookup, replies leave from the forwarded port, and
//! the allocator never hands the port out.
use std::{net::Ipv4Addr, path::Path};

use anyhow::bail;
use aya::maps::{HashMap, MapData, MapError};
use nat_common::{EndpointKey, InsideEndpoint, MAPPING_FORWARD, Mapping};

use crate::{
    tables::Tables,
    tables::static_map::{from_be, to_be},
};

const BPF_NOEXIST: u64 = 1;

/// Transport protocols a forward can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub proto: Proto,
    pub public: (Ipv4Addr, u16),
    pub inside: (Ipv4Addr, u16),
}

fn key(proto: Proto, (addr, port): (Ipv4Addr, u16)) -> EndpointKey {
    EndpointKey {
        addr: to_be(addr),
        port: port.to_be(),
        proto: proto.number(),
        _pad: 0,
    }
}

/// The `NAPT_OUT` value of a forward from public endpoint `public`: no
/// first session (its sessions, opened from outside, live in `SESSIONS`).
fn out_value((addr, port): (Ipv4Addr, u16)) -> Mapping {
    Mapping {
        addr: to_be(addr),
        port: port.to_be(),
        flags: MAPPING_FORWARD,
        ..Default::default()
    }
}

/// The `NAPT_IN` value of a forward to inside endpoint `inside`.
fn in_value((addr, port): (Ipv4Addr, u16)) -> InsideEndpoint {
    InsideEndpoint {
        addr: to_be(addr),
        port: port.to_be(),
        flags: MAPPING_FORWARD,
    }
}

pub struct Forwards {
    out: HashMap<MapData, EndpointKey, Mapping>,
    inb: HashMap<MapData, EndpointKey, InsideEndpoint>,
}

fn get<V: aya::Pod>(
    map: &HashMap<MapData, EndpointKey, V>,
    k: &EndpointKey,
) -> anyhow::Result<Option<V>> {
    match map.get(k, 0) {
        Ok(v) => Ok(Some(v)),
        Err(MapError::KeyNotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// How to free an endpoint a dynamic mapping holds (typically one a reply
/// made just after a `forward del`), instead of waiting for it to expire.
fn flush_hint(proto: Proto, inside: Ipv4Addr) -> String {
    format!(
        "; `xnat flows flush --proto {} --inside {inside}` removes it (and that host's other {} \
         bindings), or it expires once idle",
        proto.name(),
        proto.name()
    )
}

impl Forwards {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let tables = Tables::at(dir);
        Ok(Self {
            out: tables.napt_out()?.into_hash_map()?,
            inb: tables.napt_in()?.into_hash_map()?,
        })
    }

    pub fn add(&mut self, f: Forward) -> anyhow::Result<()> {
        let (pk, ik) = (key(f.proto, f.public), key(f.proto, f.inside));
        if let Some(m) = get(&self.inb, &pk)? {
            let inside = from_be(m.addr);
            let (what, hint) = if m.flags & MAPPING_FORWARD != 0 {
                ("a port forward", String::new())
            } else {
                ("a live dynamic mapping", flush_hint(f.proto, inside))
            };
            bail!(
                "{} {}:{} is already used by {what} (to {inside}:{}){hint}",
                f.proto.name(),
                f.public.0,
                f.public.1,
                u16::from_be(m.port)
            );
        }
        if let Some(m) = get(&self.out, &ik)? {
            let hint = if m.flags & MAPPING_FORWARD != 0 {
                String::new()
            } else {
                flush_hint(f.proto, f.inside.0)
            };
            bail!(
                "{} {}:{} already has a mapping (to {}:{}); one inside endpoint has one public \
                 endpoint{hint}",
                f.proto.name(),
                f.inside.0,
                f.inside.1,
                from_be(m.addr),
                u16::from_be(m.port)
            );
        }
        self.inb.insert(pk, in_value(f.inside), BPF_NOEXIST)?;
        if let Err(e) = self.out.insert(ik, out_value(f.public), BPF_NOEXIST) {
            let _ = self.inb.remove(&pk);
            return Err(e.into());
        }
        Ok(())
    }

    pub fn remove(&mut self, proto: Proto, public: (Ipv4Addr, u16)) -> anyhow::Result<Forward> {
        let pk = key(proto, public);
        let Some(m) = get(&self.inb, &pk)?.filter(|m| m.flags & MAPPING_FORWARD != 0) else {
            bail!(
                "no {} port forward on {}:{}",
                proto.name(),
                public.0,
                public.1
            );
        };
        let inside = (from_be(m.addr), u16::from_be(m.port));
        // Outbound first so no reply leaves from the port once it is freed.
        let _ = self.out.remove(&key(proto, inside));
        self.inb.remove(&pk)?;
        Ok(Forward {
            proto,
            public,
            inside,
        })
    }

    pub fn list(&self) -> anyhow::Result<Vec<Forward>> {
        let mut out = Vec::new();
        for item in self.inb.iter() {
            let (k, m) = item?;
            if m.flags & MAPPING_FORWARD == 0 {
                continue;
            }
            let Some(proto) = Proto::from_number(k.proto) else {
                continue;
            };
            out.push(Forward {
                proto,
                public: (from_be(k.addr), u16::from_be(k.port)),
                inside: (from_be(m.addr), u16::from_be(m.port)),
            });
        }
        out.sort_by_key(|f| (f.proto.number(), f.public));
        Ok(out)
    }
}
