//! ICMP errors about NAPT flows, both ways (RFC 5508). An error quotes the
//! datagram it is about; for a mapped flow the quote's inside endpoint and
//! the outer address are translated together. Errors never create or
//! refresh mappings or sessions.
use nat_common::{Counter, EndpointKey, Mapping, NatConfig};

use crate::{
    counters,
    maps::{NAPT_IN, NAPT_OUT},
    packet::Packet,
    parse::{
        icmp::{self, Embedded, InnerField},
        ipv4::Ipv4,
        verify,
    },
    rewrite::{outer, quote},
    verdict::{Direction, Verdict},
};

/// An ICMP error sent by an inside host about a datagram it received
/// through a mapping (e.g. port unreachable): the quoted destination is
/// the inside endpoint and must become the public one.
#[inline(always)]
pub fn outbound<P: Packet>(p: &mut P, ip: &Ipv4) -> Verdict {
    let l4 = ip.l4();
    let Some(inner) = icmp::embedded(p, ip, l4) else {
        return counters::drop(Counter::EgressDroppedMalformed);
    };
    let Some((port_off, port, m)) = quoted_destination_mapping(p, &inner) else {
        return counters::drop(Counter::DropIcmpErrorNoMapping);
    };
    let quoted = (port_off, port, m.port);
    if rewrite(p, ip, &inner, Direction::Egress, m.addr, quoted).is_none() {
        return counters::drop(Counter::EgressDroppedMalformed);
    }
    counters::translated(Direction::Egress, ip.bytes());
    counters::bump(Counter::IcmpErrorsTranslated);
    Verdict::Translated
}

/// The quoted endpoint `field` names, as a mapping table's key, with the
/// offset and value of its port (or identifier); `None` when the quote
/// names no port.
#[inline(always)]
fn quoted_key<P: Packet>(
    p: &P,
    inner: &Embedded,
    field: InnerField,
) -> Option<(u32, u16, EndpointKey)> {
    let (port_off, port) = inner.port(p, field)?;
    let key = EndpointKey {
        addr: inner.addr(field),
        port,
        proto: inner.ip.proto,
        _pad: 0,
    };
    Some((port_off, port, key))
}

/// Translates an error going `dir`: the outer address to `addr`, and the
/// quoted endpoint (the destination going out, the source coming in) to
/// `addr` and the port `quoted` names, with every checksum involved.
#[inline(always)]
fn rewrite<P: Packet>(
    p: &mut P,
    ip: &Ipv4,
    inner: &Embedded,
    dir: Direction,
    addr: u32,
    quoted: (u32, u16, u16),
) -> Option<()> {
    let field = match dir {
        Direction::Egress => InnerField::Dst,
        Direction::Ingress => InnerField::Src,
    };
    outer::addr(p, ip, dir, addr)?;
    quote::translate(
        p,
        inner,
        field,
        addr,
        Some(quoted),
        ip.l4() + icmp::CSUM_OFF,
    )
}

/// The mapping of the inside endpoint an ICMP error's quoted datagram was
/// sent to (its destination), with the quoted port's (or identifier's)
/// offset and value; `None` when the quote names no port or no mapping.
#[inline(always)]
pub fn quoted_destination_mapping<P: Packet>(
    p: &P,
    inner: &Embedded,
) -> Option<(u32, u16, Mapping)> {
    let (port_off, port, key) = quoted_key(p, inner, InnerField::Dst)?;
    // SAFETY: plain copy.
    let m = unsafe { NAPT_OUT.get(key).copied() }?;
    Some((port_off, port, m))
}

/// An ICMP error from outside about a datagram an inside host sent through
/// a mapping: the quoted source is the public endpoint. `None`: not about
/// a mapping (the stack gets it).
#[inline(always)]
pub fn inbound<P: Packet>(p: &mut P, ip: &Ipv4, cfg: &NatConfig) -> Option<Verdict> {
    let l4 = ip.l4();
    let inner = icmp::embedded(p, ip, l4)?;
    // The quoted datagram must be one this host sent (spoofed errors about
    // other addresses are not ours to translate).
    if inner.addr(InnerField::Src) != ip.dst {
        return None;
    }
    let (port_off, port, key) = quoted_key(p, &inner, InnerField::Src)?;
    // SAFETY: plain copy.
    let Some(inside) = (unsafe { NAPT_IN.get(key).copied() }) else {
        // About a datagram from a pool port no mapping holds: nobody
        // inside sent it, and the gateway's own use ports outside the
        // range.
        let p = u16::from_be(port);
        if p >= cfg.port_min && p <= cfg.port_max {
            return Some(counters::drop(Counter::DropInboundIcmpErrorNoMapping));
        }
        return None;
    };
    if !verify::icmp_error_checksums(p, ip, l4, &inner) {
        return Some(counters::drop(Counter::DropIcmpErrorBadChecksum));
    }
    let quoted = (port_off, port, inside.port);
    if rewrite(p, ip, &inner, Direction::Ingress, inside.addr, quoted).is_none() {
        counters::bump(Counter::IngressPassedMalformed);
        return Some(Verdict::Pass);
    }
    counters::translated(Direction::Ingress, ip.bytes());
    counters::bump(Counter::IcmpErrorsTranslated);
    Some(Verdict::Translated)
}
