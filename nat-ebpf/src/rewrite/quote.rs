//! The datagram an ICMP error quotes: its address (and, for NAPT, its
//! port or identifier) with the quoted IPv4 checksum, the quoted transport
//! checksum when it was quoted, and the ICMP checksum over all of it. The
//! outer header is `rewrite::outer`'s.
use nat_common::csum;

use crate::{
    packet::Packet,
    parse::{
        icmp::{Embedded, InnerField},
        ipv4::Ipv4,
        l4::L4,
    },
};

/// Rewrites the address `field` of the datagram `inner` quotes to `new` (and, for NAPT, the
/// port or ICMP identifier at `port.0` from `port.1` to `port.2`), with
/// the embedded IPv4 checksum, the embedded transport checksum when it
/// was quoted, and the ICMP checksum (at `icmp_csum_off`) over it all.
///
/// All of these are plain data inside the ICMP message (never
/// CHECKSUM_PARTIAL), so RFC 1624 arithmetic is right for XDP and TC.
#[inline(always)]
pub fn translate<P: Packet>(
    p: &mut P,
    inner: &Embedded,
    field: InnerField,
    new: u32,
    port: Option<(u32, u16, u16)>,
    icmp_csum_off: u32,
) -> Option<()> {
    let old = inner.addr(field);
    let addr_off = inner.ip.off
        + match field {
            InnerField::Src => Ipv4::SRC_OFF,
            InnerField::Dst => Ipv4::DST_OFF,
        };
    let ip_csum_off = inner.ip.off + Ipv4::CHECK_OFF;

    let mut icmp_csum: u16 = p.load(icmp_csum_off)?;
    let old_ip_csum = inner.ip.check;
    let new_ip_csum = csum::replace4(old_ip_csum, old, new);
    icmp_csum = csum::replace4(icmp_csum, old, new);
    icmp_csum = csum::replace2(icmp_csum, old_ip_csum, new_ip_csum);

    if let Some((l4_csum_off, kind)) = inner.quoted_l4_csum() {
        let old_l4: u16 = p.load(l4_csum_off)?;
        let mut new_l4 = old_l4;
        match kind {
            L4::Tcp => new_l4 = csum::replace4(new_l4, old, new),
            L4::Udp => new_l4 = csum::replace4_udp(new_l4, old, new),
            // ICMP has no pseudo-header: the address is not covered.
            L4::Icmp => {}
        }
        if let Some((_, old_port, new_port)) = port {
            new_l4 = match kind {
                L4::Udp => csum::replace2_udp(new_l4, old_port, new_port),
                L4::Icmp => csum::replace2_icmp(new_l4, old_port, new_port),
                L4::Tcp => csum::replace2(new_l4, old_port, new_port),
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
