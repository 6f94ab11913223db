//! NAPT's view of a transport header: which port is ours (the inside or
//! public one) and which the remote side's, the TCP flags a session
//! follows, and what an ICMP message is to NAPT. Reads only.
use nat_common::EndpointKey;

use crate::{
    packet::Packet,
    parse::{
        icmp,
        ipv4::{IPPROTO_TCP, IPPROTO_UDP, Ipv4},
        l4::{DPORT_OFF, L4, Port, TCP_CSUM_OFF, TCP_FLAGS_OFF, TCP_HLEN, UDP_CSUM_OFF, UDP_HLEN},
    },
};

/// The ports of a flow (or an ICMP query's identifier).
#[derive(Clone, Copy)]
pub struct Ports {
    /// The inside/public port (source outbound, destination inbound) or
    /// the ICMP identifier: the one a translation rewrites.
    pub ours: Port,
    /// The remote side's port (0 for ICMP queries).
    pub remote_port: u16,
    pub tcp_flags: u8,
}

impl Ports {
    /// The segment's TCP flags if it is TCP (what its session's state
    /// follows).
    #[inline(always)]
    pub fn tcp(&self) -> Option<u8> {
        (self.ours.l4 == L4::Tcp).then_some(self.tcp_flags)
    }

    /// The key of our endpoint `addr`:`ours` in NAPT_OUT (outbound: the
    /// inside endpoint) or NAPT_IN (inbound: the public one).
    #[inline(always)]
    pub fn key(&self, addr: u32, proto: u8) -> EndpointKey {
        EndpointKey {
            addr,
            port: self.ours.value,
            proto,
            _pad: 0,
        }
    }
}

/// 16-bit words of a TCP header up to the one holding its flags byte.
const TCP_HEAD_WORDS: usize = (TCP_FLAGS_OFF as usize + 1) / 2;
const _: () = assert!(TCP_FLAGS_OFF as usize == 2 * TCP_HEAD_WORDS - 1);

/// Reads the ports of a TCP/UDP segment; `outbound` says which port is
/// ours. `Ok(None)`: not TCP or UDP; `Err` means truncated.
#[inline(always)]
pub fn of<P: Packet>(p: &P, ip: &Ipv4, outbound: bool) -> Result<Option<Ports>, ()> {
    let l4 = ip.l4();
    match ip.proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let tcp = ip.proto == IPPROTO_TCP;
            if !ip.has(l4, if tcp { TCP_HLEN } else { UDP_HLEN }) {
                return Err(());
            }
            // One bounds check and the fields' own loads: TCP's ports up
            // to its flags byte (14 bytes), UDP's ports.
            let ([sport, dport], tcp_flags) = if tcp {
                let head: [u16; TCP_HEAD_WORDS] = p.load(l4).ok_or(())?;
                let [_, flags] = head[TCP_HEAD_WORDS - 1].to_ne_bytes();
                ([head[0], head[1]], flags)
            } else {
                (p.load::<[u16; 2]>(l4).ok_or(())?, 0)
            };
            let (off, value, remote_port) = if outbound {
                (l4, sport, dport)
            } else {
                (l4 + DPORT_OFF, dport, sport)
            };
            Ok(Some(Ports {
                ours: Port {
                    off,
                    value,
                    csum_off: l4 + if tcp { TCP_CSUM_OFF } else { UDP_CSUM_OFF },
                    l4: if tcp { L4::Tcp } else { L4::Udp },
                },
                remote_port,
                tcp_flags,
            }))
        }
        _ => Ok(None),
    }
}

/// What an ICMP message is to NAPT.
pub enum IcmpMsg {
    /// Too short to hold an ICMP header.
    Cut,
    /// An error, quoting a datagram.
    Error,
    /// The query type asked for (echo outbound, echo reply inbound), whose
    /// identifier is the "port".
    Query(Ports),
    /// Any other message.
    Other,
}

/// Classifies the ICMP message of `ip`; `query_type` is the query NAPT
/// translates going this way. `None` if a byte cannot be read.
#[inline(always)]
pub fn icmp<P: Packet>(p: &P, ip: &Ipv4, query_type: u8) -> Option<IcmpMsg> {
    let l4 = ip.l4();
    if !ip.has(l4, icmp::HDR_LEN) {
        return Some(IcmpMsg::Cut);
    }
    let icmp_type: u8 = p.load(l4)?;
    if icmp::is_error(icmp_type) {
        return Some(IcmpMsg::Error);
    }
    if icmp_type != query_type {
        return Some(IcmpMsg::Other);
    }
    let id: u16 = p.load(l4 + icmp::ID_OFF)?;
    Some(IcmpMsg::Query(Ports {
        ours: Port {
            off: l4 + icmp::ID_OFF,
            value: id,
            csum_off: l4 + icmp::CSUM_OFF,
            l4: L4::Icmp,
        },
        remote_port: 0,
        tcp_flags: 0,
    }))
}
