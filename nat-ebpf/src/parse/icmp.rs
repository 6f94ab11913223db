//! ICMP errors: the embedded ("quoted") datagram of a translated flow must be
//! translated too, or the inside host never matches the error to its socket
//! (traceroute, PMTU discovery, ECONNREFUSED on connected UDP sockets).
use crate::{
    packet::Packet,
    parse::ipv4::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4, ipv4_at},
};
use nat_common::csum;

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
pub const ID_OFF: u32 = 4;

/// Offset of the checksum in the ICMP header.
pub const CSUM_OFF: u32 = 2;
/// Length of the ICMP header before an error's embedded datagram.
pub const HDR_LEN: u32 = 8;

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

/// Which transport checksum an embedded datagram carries.
#[derive(Clone, Copy)]
enum L4Csum {
    Tcp,
    /// 0 means "no checksum" and stays 0.
    Udp,
    /// No pseudo-header; only the identifier is covered.
    Icmp,
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
                InnerField::Dst => l4 + 2,
            },
            IPPROTO_ICMP => l4 + 4,
            _ => return None,
        };
        if !self.ip.has(off, 2) {
            return None;
        }
        Some((off, p.load(off)?))
    }

    /// Rewrites the embedded address `field` to `new` (and, for NAPT, the
    /// port or ICMP identifier at `port.0` from `port.1` to `port.2`), with
    /// the embedded IPv4 checksum, the embedded transport checksum when it
    /// was quoted, and the ICMP checksum (at `icmp_csum_off`) over it all.
    ///
    /// All of these are plain data inside the ICMP message (never
    /// CHECKSUM_PARTIAL), so RFC 1624 arithmetic is right for XDP and TC.
    #[inline(always)]
    pub fn rewrite<P: Packet>(
        &self,
        p: &mut P,
        field: InnerField,
        new: u32,
        port: Option<(u32, u16, u16)>,
        icmp_csum_off: u32,
    ) -> Option<()> {
        let old = self.addr(field);
        let addr_off = self.ip.off
            + match field {
                InnerField::Src => Ipv4::SRC_OFF,
                InnerField::Dst => Ipv4::DST_OFF,
            };
        let ip_csum_off = self.ip.off + Ipv4::CHECK_OFF;

        let mut icmp_csum: u16 = p.load(icmp_csum_off)?;
        let old_ip_csum = self.ip.check;
        let new_ip_csum = csum::replace4(old_ip_csum, old, new);
        icmp_csum = csum::replace4(icmp_csum, old, new);
        icmp_csum = csum::replace2(icmp_csum, old_ip_csum, new_ip_csum);

        if let Some((l4_csum_off, kind)) = self.quoted_l4_csum() {
            let old_l4: u16 = p.load(l4_csum_off)?;
            let mut new_l4 = old_l4;
            match kind {
                L4Csum::Tcp => new_l4 = csum::replace4(new_l4, old, new),
                L4Csum::Udp => new_l4 = csum::replace4_udp(new_l4, old, new),
                // ICMP has no pseudo-header: the address is not covered.
                L4Csum::Icmp => {}
            }
            if let Some((_, old_port, new_port)) = port {
                new_l4 = match kind {
                    L4Csum::Udp => csum::replace2_udp(new_l4, old_port, new_port),
                    L4Csum::Icmp => csum::replace2_icmp(new_l4, old_port, new_port),
                    L4Csum::Tcp => csum::replace2(new_l4, old_port, new_port),
                };
            }
            icmp_csum = csum::replace2(icmp_csum, old_l4, new_l4);
            p.store(l4_csum_off, &new_l4)?;
        }
        if let Some((port_off, old_port, new_port)) = port {
            icmp_csum = csum::replace2(icmp_csum, old_port, new_port);
            p.store(port_off, &new_port)?;
        }

        p.store(addr_off, &new)?;
        p.store(ip_csum_off, &new_ip_csum)?;
        p.store(icmp_csum_off, &csum::icmp_never_zero(icmp_csum))
    }

    /// Offset and kind of the embedded transport checksum if the quote
    /// includes it.
    #[inline(always)]
    fn quoted_l4_csum(&self) -> Option<(u32, L4Csum)> {
        if self.ip.later_fragment {
            return None;
        }
        let l4 = self.ip.l4();
        match self.ip.proto {
            IPPROTO_TCP if self.ip.has(l4 + 16, 2) => Some((l4 + 16, L4Csum::Tcp)),
            IPPROTO_UDP if self.ip.has(l4 + 6, 2) => Some((l4 + 6, L4Csum::Udp)),
            IPPROTO_ICMP if self.ip.has(l4 + 2, 2) => Some((l4 + 2, L4Csum::Icmp)),
            _ => None,
        }
    }
}
