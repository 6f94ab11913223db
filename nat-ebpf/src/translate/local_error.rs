//! ICMP errors the gateway itself sends about a packet it received from
//! outside and translated (Time Exceeded for TTL 1, Fragmentation Needed
//! towards a smaller inside MTU, Host Unreachable for a silent forward
//! target). Inbound packets are translated before the kernel routes them,
//! so the kernel quotes the *translated* header: the inside address and
//! port. conntrack turns such RELATED errors back; so does this, on the
//! way out of the external interface: the quoted destination becomes the
//! public endpoint again. The outer header (the gateway's own address to
//! the remote) stays as it is.
use nat_common::Counter;

use crate::{
    counters,
    napt::{self, config::translates_source},
    packet::Packet,
    parse::{
        icmp::{self, InnerField},
        ipv4::{IPPROTO_ICMP, Ipv4},
    },
    rewrite::quote,
    translate::static_nat::lookup_out,
    verdict::Verdict,
};

/// An outbound packet that neither static NAT nor NAPT claimed: if it is
/// an ICMP error quoting an inside endpoint, rewrite the quote (or drop
/// the error when no binding names that endpoint: it must not leave with
/// an inside address). `None`: not such an error.
#[inline(always)]
pub fn egress<P: Packet>(p: &mut P, ip: &Ipv4) -> Option<Verdict> {
    if ip.proto != IPPROTO_ICMP || ip.later_fragment {
        return None;
    }
    let l4 = ip.l4();
    if !ip.has(l4, icmp::HDR_LEN) || !icmp::is_error(p.load::<u8>(l4)?) {
        return None;
    }
    let inner = icmp::embedded(p, ip, l4)?;
    let quoted = inner.addr(InnerField::Dst);
    let csum_off = l4 + icmp::CSUM_OFF;
    if let Some(public) = lookup_out(quoted) {
        // Static 1:1: only the address changes.
        return Some(done(quote::translate(
            p,
            &inner,
            InnerField::Dst,
            public,
            None,
            csum_off,
        )));
    }
    if !translates_source(quoted) {
        return None;
    }
    // From here the quote names an inside host NAPT translates: it leaves
    // with its public endpoint or not at all.
    let Some((port_off, port, m)) = napt::icmp_error::quoted_destination_mapping(p, &inner) else {
        counters::bump(Counter::DropIcmpErrorNoMapping);
        return Some(Verdict::Drop);
    };
    Some(done(quote::translate(
        p,
        &inner,
        InnerField::Dst,
        m.addr,
        Some((port_off, port, m.port)),
        csum_off,
    )))
}

/// Counts a rewritten error; one whose rewrite failed must not leave.
#[inline(always)]
fn done(rewritten: Option<()>) -> Verdict {
    match rewritten {
        Some(()) => {
            counters::bump(Counter::IcmpErrorsLocalTranslated);
            Verdict::Translated
        }
        None => {
            counters::bump(Counter::EgressDroppedMalformed);
            Verdict::Drop
        }
    }
}
