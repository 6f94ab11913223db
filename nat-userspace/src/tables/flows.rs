//! Reading sessions for `xnat flows`, like `conntrack -L`. A NAT64 flow's
//! inside endpoint is its IPv6 host's (`[2001:db8::5]:40000`), not the
//! stand-in its binding holds.
use std::{net::IpAddr, path::Path};

use std::collections::HashSet;

use nat_common::{EndpointKey, MAPPING_PEER, NatConfig, Session, SessionKey, tcp_state_name};
use serde::Serialize;

use crate::{agent::clock, tables::nat64::Hosts, tables::sessions, tables::static_map::from_be};

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
    /// The inside host: IPv4, or IPv6 for a NAT64 host.
    pub inside_addr: IpAddr,
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
    let hosts = Hosts::read(dir)?;
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
                inside: hosts.endpoint(k.addr, k.port),
                public: endpoint(m.addr, m.port),
                remote: "-".to_string(),
                inside_addr: hosts.inside_addr(k.addr),
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
            let peer = peers.contains(&key(k.inside_addr, k.inside_port, k.proto));
            session_flow(&hosts, cfg, now, &k, &s, peer)
        })
        .chain(idle_peers)
        .collect();
    flows.sort_by(|a, b| (a.proto, &a.inside, &a.remote).cmp(&(b.proto, &b.inside, &b.remote)));
    Ok(flows)
}

/// The flow of session `k`/`s` at `now` (data-plane clock).
fn session_flow(
    hosts: &Hosts,
    cfg: &NatConfig,
    now: u64,
    k: &SessionKey,
    s: &Session,
    peer: bool,
) -> Flow {
    let idle = now.saturating_sub(s.last_seen) / 1_000_000_000;
    let timeout = cfg.session_timeout(k.proto, s.tcp) as u64;
    Flow {
        proto: proto_name(k.proto),
        state: state_name(k.proto, s.tcp),
        inside: hosts.endpoint(k.inside_addr, k.inside_port),
        public: endpoint(s.public_addr, s.public_port),
        remote: endpoint(k.remote_addr, k.remote_port),
        inside_addr: hosts.inside_addr(k.inside_addr),
        age_s: now.saturating_sub(s.created) / 1_000_000_000,
        idle_s: idle,
        expires_in_s: timeout.saturating_sub(idle),
        packets_out: s.packets_out,
        bytes_out: s.bytes_out,
        packets_in: s.packets_in,
        bytes_in: s.bytes_in,
        peer,
    }
}

impl Flow {
    /// The flow as `xnat flows` prints it, one line.
    pub fn line(&self) -> String {
        format!(
            "{:<4} {:<11} inside={} public={} remote={} age={}s expires={}s out={}p/{}B in={}p/{}B{}",
            self.proto,
            self.state,
            self.inside,
            self.public,
            self.remote,
            self.age_s,
            self.expires_in_s,
            self.packets_out,
            self.bytes_out,
            self.packets_in,
            self.bytes_in,
            if self.peer { " [peer]" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::static_map::to_be;
    use nat_common::nat64::stand_in;

    /// A NAT64 host's flow shows its IPv6 endpoint, in text and JSON; an
    /// IPv4 host's as before.
    #[test]
    fn nat64_flows_show_the_ipv6_host() {
        const S: u64 = 1_000_000_000;
        let host = stand_in(0x1234);
        let hosts = Hosts::from_pairs([(host, "2001:db8::5".parse().unwrap())]);
        let cfg = NatConfig {
            timeout_udp: 300,
            ..NatConfig::default()
        };
        let key = |inside_addr| SessionKey {
            inside_addr,
            remote_addr: to_be("192.0.2.33".parse().unwrap()),
            inside_port: 40000u16.to_be(),
            remote_port: 53u16.to_be(),
            proto: 17,
            ..SessionKey::default()
        };
        let session = Session {
            public_addr: to_be("198.51.100.1".parse().unwrap()),
            public_port: 1030u16.to_be(),
            created: 100 * S,
            last_seen: 190 * S,
            packets_out: 2,
            bytes_out: 120,
            ..Session::default()
        };
        let f = session_flow(&hosts, &cfg, 200 * S, &key(host), &session, false);
        assert_eq!(
            f.line(),
            "udp              inside=[2001:db8::5]:40000 public=198.51.100.1:1030 \
             remote=192.0.2.33:53 age=100s expires=290s out=2p/120B in=0p/0B"
        );
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["inside"], "[2001:db8::5]:40000");
        assert_eq!(json["inside_addr"], "2001:db8::5");

        let v4 = session_flow(
            &hosts,
            &cfg,
            200 * S,
            &key(to_be("10.0.0.2".parse().unwrap())),
            &session,
            true,
        );
        assert!(
            v4.line().contains("inside=10.0.0.2:40000 ") && v4.line().ends_with(" [peer]"),
            "{}",
            v4.line()
        );
        assert_eq!(
            serde_json::to_value(&v4).unwrap()["inside_addr"],
            "10.0.0.2"
        );
    }
}
