//! ICMP: the message types xnat tells apart, and the embedded ("quoted")
//! datagram of an error, which must be translated too or the inside host
//! never matches the error to its socket (traceroute, PMTU discovery,
//! ECONNREFUSED on connected UDP sockets); `rewrite::quote` rewrites it.
//! The message types are written here: `network-types`' `Icmpv4Type` has
//! no Time Exceeded.
use core::mem::offset_of;

use network_types::icmp::Icmpv4Hdr;

use crate::{
    packet::Packet,
    parse::{
        ipv4::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4, ipv4_at},
        l4::{DPORT_OFF, L4, TCP_CSUM_OFF, UDP_CSUM_OFF},
    },
};

pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMP_PARAMETERPROB: u8 = 12;
pub const ICMP_ECHOREPLY: u8 = 0;
pub const ICMP_ECHO: u8 = 8;
/// Destination unreachable code 13: communication administratively
/// prohibited (what a NAT out of ports answers, RFC 5508).
#[allow(dead_code)] // documents what the agent answers; sent from user space
pub const ICMP_CODE_ADMIN_PROHIBITED: u8 = 13;
/// Offset of the identifier in an ICMP query.
pub const ID_OFF: u32 = offset_of!(Icmpv4Hdr, data) as u32;

/// Offset of the checksum in the ICMP header.
pub const CSUM_OFF: u32 = offset_of!(Icmpv4Hdr, check) as u32;
/// Length of the ICMP header before an error's embedded datagram.
pub const HDR_LEN: u32 = Icmpv4Hdr::LEN as u32;

#[inline(always)]
pub fn is_error(icmp_type: u8) -> bool {
    matches!(
        icmp_type,
        ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAMETERPROB
    )
}

/// Which address of the embedded header refers to our host: for an error
/// coming in, the datagram it quotes was sent *by* the inside host (its
/// source); for an error going out, the quoted datagram was sent *to* it.
#[derive(Clone, Copy)]
pub enum InnerField {
    Src,
    Dst,
}

/// The embedded datagram of an ICMP error.
pub struct Embedded {
    pub ip: Ipv4,
}

/// Parses the embedded IPv4 header of the ICMP error whose ICMP header is at
/// `icmp_off`. `None` if the quote is too short to hold a whole IPv4 header.
#[inline(always)]
pub fn embedded<P: Packet>(p: &P, outer: &Ipv4, icmp_off: u32) -> Option<Embedded> {
    let ip = ipv4_at(p, icmp_off + HDR_LEN, outer.end)?;
    Some(Embedded { ip })
}

impl Embedded {
    #[inline(always)]
    pub fn addr(&self, field: InnerField) -> u32 {
        match field {
            InnerField::Src => self.ip.src,
            InnerField::Dst => self.ip.dst,
        }
    }

    /// The embedded datagram's port on the `field` side (TCP/UDP), or its
    /// identifier for an ICMP query, with the offset it lies at.
    #[inline(always)]
    pub fn port<P: Packet>(&self, p: &P, field: InnerField) -> Option<(u32, u16)> {
        if self.ip.later_fragment {
            return None;
        }
        let l4 = self.ip.l4();
        let off = match self.ip.proto {
            IPPROTO_TCP | IPPROTO_UDP => match field {
                InnerField::Src => l4,
                InnerField::Dst => l4 + DPORT_OFF,
            },
            IPPROTO_ICMP => l4 + ID_OFF,
            _ => return None,
        };
        if !self.ip.has(off, 2) {
            return None;
        }
        Some((off, p.load(off)?))
    }

    /// Offset and kind of the embedded transport checksum if the quote
    /// includes it.
    #[inline(always)]
    pub fn quoted_l4_csum(&self) -> Option<(u32, L4)> {
        if self.ip.later_fragment {
            return None;
        }
        let l4 = self.ip.l4();
        match self.ip.proto {
            IPPROTO_TCP if self.ip.has(l4 + TCP_CSUM_OFF, 2) => Some((l4 + TCP_CSUM_OFF, L4::Tcp)),
            IPPROTO_UDP if self.ip.has(l4 + UDP_CSUM_OFF, 2) => Some((l4 + UDP_CSUM_OFF, L4::Udp)),
            IPPROTO_ICMP if self.ip.has(l4 + CSUM_OFF, 2) => Some((l4 + CSUM_OFF, L4::Icmp)),
            _ => None,
        }
    }
}
