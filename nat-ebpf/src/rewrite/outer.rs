//! The outer packet's translated endpoint: the IPv4 address (source on the
//! way out, destination on the way in) with the header checksum, the
//! transport checksum whose pseudo-header covers it, and the port or ICMP
//! identifier with the checksum that covers that.
use nat_common::csum;

use crate::{
    packet::Packet,
    parse::{
        ipv4::Ipv4,
        l4::{L4, Port},
    },
    verdict::Direction,
};

/// The offset and value of the address `dir` translates.
#[inline(always)]
fn addr_field(ip: &Ipv4, dir: Direction) -> (u32, u32) {
    match dir {
        Direction::Egress => (ip.off + Ipv4::SRC_OFF, ip.src),
        Direction::Ingress => (ip.off + Ipv4::DST_OFF, ip.dst),
    }
}

/// Rewrites the address `dir` translates to `new`, with the IPv4 header
/// checksum. All a later fragment (no transport header) or an ICMP error's
/// outer header (ICMP has no pseudo-header) needs.
#[inline(always)]
pub fn addr<P: Packet>(p: &mut P, ip: &Ipv4, dir: Direction, new: u32) -> Option<()> {
    let (off, old) = addr_field(ip, dir);
    p.store(off, &new)?;
    // The IPv4 header checksum is always complete (never offloaded as
    // partial), so plain RFC 1624 arithmetic is right in XDP and TC alike.
    p.store(
        ip.off + Ipv4::CHECK_OFF,
        &csum::replace4(ip.check, old, new),
    )
}

/// Fixes the transport checksum at `csum_off` after the address `dir`
/// translates changed to `new`: TCP and UDP cover it in their
/// pseudo-header, ICMP does not.
#[inline(always)]
pub fn l4_for_addr<P: Packet>(
    p: &mut P,
    ip: &Ipv4,
    dir: Direction,
    csum_off: u32,
    l4: L4,
    new: u32,
) -> Option<()> {
    let (_, old) = addr_field(ip, dir);
    match l4 {
        // One call for both: each call site inlines the whole helper.
        L4::Tcp | L4::Udp => p.fix_l4_csum_for_addr(csum_off, old, new, l4 == L4::Udp),
        L4::Icmp => Some(()),
    }
}

/// Rewrites `port` to `new` with the checksum that covers it; nothing when
/// it does not change.
#[inline(always)]
pub fn port<P: Packet>(p: &mut P, port: &Port, new: u16) -> Option<()> {
    if new == port.value {
        return Some(());
    }
    match port.l4 {
        L4::Tcp | L4::Udp => {
            p.fix_l4_csum_for_port(port.csum_off, port.value, new, port.l4 == L4::Udp)?;
        }
        L4::Icmp => {
            // ICMP checksums are always complete (never offloaded).
            let c: u16 = p.load(port.csum_off)?;
            let fixed = csum::replace2_icmp(c, port.value, new);
            p.store(port.csum_off, &fixed)?;
        }
    }
    p.store(port.off, &new)
}

/// Rewrites the endpoint `dir` translates — address and `port` — to
/// `new_addr`:`new_port`, with every checksum that covers them.
#[inline(always)]
pub fn endpoint<P: Packet>(
    p: &mut P,
    ip: &Ipv4,
    dir: Direction,
    new_addr: u32,
    port: &Port,
    new_port: u16,
) -> Option<()> {
    addr(p, ip, dir, new_addr)?;
    match port.l4 {
        L4::Tcp | L4::Udp => {
            let (_, old_addr) = addr_field(ip, dir);
            p.fix_l4_csum_for_endpoint(
                port.csum_off,
                (old_addr, new_addr),
                (port.value, new_port),
                port.l4 == L4::Udp,
            )?;
            if new_port != port.value {
                p.store(port.off, &new_port)?;
            }
            Some(())
        }
        // ICMP's checksum covers the identifier, not the address.
        L4::Icmp => self::port(p, port, new_port),
    }
}
