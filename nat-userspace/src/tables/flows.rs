//! Reading sessions for `xnat flows`, like `conntrack -L`.
use std::{net::Ipv4Addr, path::Path};

use std::collections::HashSet;

use nat_common::{EndpointKey, MAPPING_PEER, NatConfig, tcp_state_name};
use serde::Serialize;

use crate::{agent::clock, tables::sessions, tables::static_map::from_be};

#[derive(Clone, Debug, Serialize)]
pub struct Flow {
    pub proto: &'static str,
    /// TCP state (RFC 6146: SYN_OUT, SYN_IN, SYN_RECV, ESTABLISHED,
    /// FIN_OUT, FIN_IN, FIN_BOTH, TRANSITORY, PICKUP_OUT, PICKUP_IN);
    /// empty for UDP/ICMP.
    pub state: &'static str,
    pub inside: String,
    pub public: String,
    pub remote: String,
    pub inside_addr: Ipv4Addr,
    pub age_s: u64,
    pub idle_s: u64,
    /// Seconds until the agent expires it if nothing more is seen.
    pub expires_in_s: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Its mapping was learned from a peer gateway (binding sync). A peer
    /// mapping without a session here is listed too, with no remote
    /// endpoint ("-") and the mapping's idle time and timeout.
    pub peer: bool,
}

pub fn proto_name(p: u8) -> &'static str {
    match p {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        _ => "other",
    }
}

pub fn state_name(proto: u8, tcp: u8) -> &'static str {
    if proto != 6 {
        return "";
    }
    tcp_state_name(tcp)
}

fn endpoint(addr: u32, port_be: u16) -> String {
    format!("{}:{}", from_be(addr), u16::from_be(port_be))
}

/// All sessions, and the peer-learned mappings that have none, sorted by
/// protocol and inside endpoint.
pub fn read(dir: &Path, cfg: &NatConfig) -> anyhow::Result<Vec<Flow>> {
    let sessions::Snapshot { mappings, sessions } = sessions::read(dir)?;
    let now = clock::now_ns();
    let key = |addr, port, proto| EndpointKey {
        addr,
        port,
        proto,
        _pad: 0,
    };
    let peers: HashSet<EndpointKey> = mappings
        .iter()
        .filter(|(_, m)| m.flags & MAPPING_PEER != 0)
        .map(|(k, _)| *k)
        .collect();
    let with_sessions: HashSet<EndpointKey> = sessions
        .iter()
        .map(|(k, _)| key(k.inside_addr, k.inside_port, k.proto))
        .collect();
    let idle_peers: Vec<Flow> = mappings
        .iter()
        .filter(|(k, _)| peers.contains(k) && !with_sessions.contains(k))
        .map(|(k, m)| {
            let idle = now.saturating_sub(m.last_seen) / 1_000_000_000;
            Flow {
                proto: proto_name(k.proto),
                state: "",
                inside: endpoint(k.addr, k.port),
                public: endpoint(m.addr, m.port),
                remote: "-".to_string(),
                inside_addr: from_be(k.addr),
                age_s: now.saturating_sub(m.created) / 1_000_000_000,
                idle_s: idle,
                expires_in_s: u64::from(cfg.mapping_timeout(k.proto)).saturating_sub(idle),
                packets_out: 0,
                bytes_out: 0,
                packets_in: 0,
                bytes_in: 0,
                peer: true,
            }
        })
        .collect();
    let mut flows: Vec<Flow> = sessions
        .into_iter()
        .map(|(k, s)| {
            let idle = now.saturating_sub(s.last_seen) / 1_000_000_000;
            let timeout = cfg.session_timeout(k.proto, s.tcp) as u64;
            Flow {
                proto: proto_name(k.proto),
                state: state_name(k.proto, s.tcp),
                inside: endpoint(k.inside_addr, k.inside_port),
                public: endpoint(s.public_addr, s.public_port),
                remote: endpoint(k.remote_addr, k.remote_port),
                inside_addr: from_be(k.inside_addr),
                age_s: now.saturating_sub(s.created) / 1_000_000_000,
                idle_s: idle,
                expires_in_s: timeout.saturating_sub(idle),
                packets_out: s.packets_out,
                bytes_out: s.bytes_out,
                packets_in: s.packets_in,
                bytes_in: s.bytes_in,
                peer: peers.contains(&key(k.inside_addr, k.inside_port, k.proto)),
            }
        })
        .chain(idle_peers)
        .collect();
    flows.sort_by(|a, b| (a.proto, &a.inside, &a.remote).cmp(&(b.proto, &b.inside, &b.remote)));
    Ok(flows)
}
