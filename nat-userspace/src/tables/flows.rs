//! Reading sessions for `xnat flows`, like `conntrack -L`.
use std::{net::Ipv4Addr, path::Path};

use nat_common::{NatConfig, tcp_state_name};
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

/// All sessions, sorted by protocol and inside endpoint.
pub fn read(dir: &Path, cfg: &NatConfig) -> anyhow::Result<Vec<Flow>> {
    let all = sessions::read(dir)?.sessions;
    let now = clock::now_ns();
    let mut flows: Vec<Flow> = all
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
            }
        })
        .collect();
    flows.sort_by(|a, b| (a.proto, &a.inside, &a.remote).cmp(&(b.proto, &b.inside, &b.remote)));
    Ok(flows)
}
