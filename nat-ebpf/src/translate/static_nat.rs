//! Static 1:1 NAT: a private address and a public one, both ways, every
//! protocol. Looked up before NAPT (it takes precedence). A packet is
//! planned first (every byte we will touch is present) and rewritten only
//! then, so a packet that fails the plan is never half-rewritten.
use nat_common::Counter;

use crate::{
    counters,
    maps::{STATIC_EMPTY, STATIC_IN, STATIC_OUT},
    packet::Packet,
    parse::{
        icmp::{self, Embedded, InnerField},
        ipv4::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4},
        l4::{L4, TCP_CSUM_OFF, TCP_HLEN, UDP_CSUM_OFF, UDP_HLEN},
        verify,
    },
    rewrite::{outer, quote},
    verdict::{Direction, Verdict},
};

/// Whether user space said the static tables are empty: a hash lookup per
/// packet in an empty table still costs a tenth of a translation.
#[inline(always)]
fn no_static() -> bool {
    STATIC_EMPTY.get(0).is_some_and(|v| *v != 0)
}

/// The public address of a statically mapped private one.
#[inline(always)]
pub fn lookup_out(addr: u32) -> Option<u32> {
    if no_static() {
        return None;
    }
    // SAFETY: values are plain u32 copied out immediately.
    unsafe { STATIC_OUT.get(addr).copied() }
}

/// The private address of a statically mapped public one.
#[inline(always)]
pub fn lookup_in(addr: u32) -> Option<u32> {
    if no_static() {
        return None;
    }
    // SAFETY: as above.
    unsafe { STATIC_IN.get(addr).copied() }
}

/// Translates the address of a statically mapped packet to `new`
/// (the source on egress, the destination on ingress).
#[inline(always)]
pub fn translate<P: Packet>(p: &mut P, ip: &Ipv4, dir: Direction, new: u32) -> Verdict {
    let Some(plan) = plan_l4(p, ip, dir) else {
        return malformed(dir);
    };
    if dir == Direction::Ingress
        && let L4Plan::IcmpError { inner, .. } = &plan
        && !verify::icmp_error_checksums(p, ip, ip.l4(), inner)
    {
        // RFC 5508 REQ-3: an error that fails its checksums is not ours to
        // vouch for.
        counters::bump(Counter::DropIcmpErrorBadChecksum);
        return Verdict::Drop;
    }
    if rewrite(p, ip, dir, new, &plan).is_none() {
        // Every offset was checked by the plan, so a failing store means the
        // kernel refused the write; do not let a half-translated packet out.
        return malformed(dir);
    }
    counters::translated(dir, ip.bytes());
    if matches!(plan, L4Plan::IcmpError { .. }) {
        counters::bump(Counter::IcmpErrorsTranslated);
    }
    Verdict::Translated
}

/// What the transport header needs when the outer address changes.
enum L4Plan {
    /// No checksum covers the address (ICMP query, other protocols, later
    /// fragments).
    Nothing,
    /// TCP or UDP checksum at this offset (pseudo-header covers addresses).
    Csum { off: u32, l4: L4 },
    /// An ICMP error quoting a datagram whose address we also translate.
    IcmpError {
        csum_off: u32,
        inner: Embedded,
        new_inner: u32,
    },
}

/// Egress drops what it cannot translate (a private address must never
/// leak); ingress passes it untouched to the stack, which discards it.
#[inline(always)]
fn malformed(dir: Direction) -> Verdict {
    match dir {
        Direction::Egress => {
            counters::bump(Counter::EgressDroppedMalformed);
            Verdict::Drop
        }
        Direction::Ingress => {
            counters::bump(Counter::IngressPassedMalformed);
            Verdict::Pass
        }
    }
}

/// Decides what the transport layer needs; `None` if a header we must touch
/// is not entirely present.
#[inline(always)]
fn plan_l4<P: Packet>(p: &P, ip: &Ipv4, dir: Direction) -> Option<L4Plan> {
    if ip.later_fragment {
        return Some(L4Plan::Nothing);
    }
    let l4 = ip.l4();
    match ip.proto {
        IPPROTO_TCP => ip.has(l4, TCP_HLEN).then_some(L4Plan::Csum {
            off: l4 + TCP_CSUM_OFF,
            l4: L4::Tcp,
        }),
        IPPROTO_UDP => ip.has(l4, UDP_HLEN).then_some(L4Plan::Csum {
            off: l4 + UDP_CSUM_OFF,
            l4: L4::Udp,
        }),
        IPPROTO_ICMP => {
            if !ip.has(l4, icmp::HDR_LEN) {
                return None;
            }
            let icmp_type: u8 = p.load(l4)?;
            if !icmp::is_error(icmp_type) {
                return Some(L4Plan::Nothing);
            }
            let inner = icmp::embedded(p, ip, l4)?;
            let new_inner = match dir {
                Direction::Ingress => lookup_in(inner.addr(InnerField::Src)),
                Direction::Egress => lookup_out(inner.addr(InnerField::Dst)),
            };
            match new_inner {
                Some(new_inner) => Some(L4Plan::IcmpError {
                    csum_off: l4 + icmp::CSUM_OFF,
                    inner,
                    new_inner,
                }),
                // The quote is about somebody else: only the outer address
                // is ours, and ICMP has no pseudo-header.
                None => Some(L4Plan::Nothing),
            }
        }
        _ => Some(L4Plan::Nothing),
    }
}

/// Rewrites the address `dir` translates to `new`, and what `plan` says
/// the transport header needs.
#[inline(always)]
fn rewrite<P: Packet>(p: &mut P, ip: &Ipv4, dir: Direction, new: u32, plan: &L4Plan) -> Option<()> {
    outer::addr(p, ip, dir, new)?;
    match plan {
        L4Plan::Nothing => Some(()),
        L4Plan::Csum { off, l4 } => outer::l4_for_addr(p, ip, dir, *off, *l4, new),
        L4Plan::IcmpError {
            csum_off,
            inner,
            new_inner,
        } => {
            let field = match dir {
                Direction::Ingress => InnerField::Src,
                Direction::Egress => InnerField::Dst,
            };
            quote::translate(p, inner, field, *new_inner, None, *csum_off)
        }
    }
}
