//! The translation core shared by all programs: parse the IPv4 header,
//! then hand the packet to the first stage that owns it — static 1:1 NAT,
//! dynamic NAPT, the gateway's own ICMP errors — or pass it untouched.
use nat_common::{Counter, nat64::is_stand_in};

use crate::{
    counters,
    napt::{self, config::translates_source},
    packet::Packet,
    parse::ipv4::{self, Ipv4},
    translate::{local_error, static_nat},
    verdict::{Direction, Verdict},
};

#[inline(always)]
pub fn process<P: Packet>(p: &mut P, dir: Direction) -> Verdict {
    let Some(ip) = ipv4::outer_ipv4(p) else {
        if dir == Direction::Egress && leaks_inside_source(p) {
            counters::bump(Counter::EgressDroppedMalformed);
            return Verdict::Drop;
        }
        counters::bump(Counter::PassedNotOurs);
        return Verdict::Pass;
    };
    if dir == Direction::Egress && is_stand_in(ip.src) {
        // Only NAT64 makes packets from stand-ins (`nat64_egress`); one
        // from anywhere else would borrow an IPv6 host's bindings.
        counters::bump(Counter::EgressDroppedMalformed);
        return Verdict::Drop;
    }
    let mapped = match dir {
        Direction::Egress => static_nat::lookup_out(ip.src),
        Direction::Ingress => static_nat::lookup_in(ip.dst),
    };
    if let Some(new) = mapped {
        return static_nat::translate(p, &ip, dir, new);
    }
    // Not a static mapping: dynamic NAPT may own it.
    let napt = match dir {
        Direction::Egress => napt::outbound::egress(p, &ip),
        Direction::Ingress => napt::inbound::ingress(p, &ip),
    };
    if let Some(v) = napt {
        return v;
    }
    if dir == Direction::Egress
        && let Some(v) = local_error::egress(p, &ip)
    {
        return v;
    }
    counters::bump(Counter::PassedNotOurs);
    Verdict::Pass
}

/// NAT64's IPv4 leg: a packet from an IPv6 host's stand-in, translated by
/// static 1:1 NAT or NAPT like an inside host's; `Pass` if neither owns it.
#[inline(always)]
pub fn nat64_egress<P: Packet>(p: &mut P, ip: &Ipv4) -> Verdict {
    if let Some(new) = static_nat::lookup_out(ip.src) {
        return static_nat::translate(p, ip, Direction::Egress, new);
    }
    napt::outbound::egress_stand_in(p, ip).unwrap_or(Verdict::Pass)
}

/// A frame with the IPv4 Ethernet type whose header does not parse (IHL <
/// 5, version not 4, a total length inside the header, cut short) cannot
/// be translated; if its source field holds an address xnat translates, it
/// must not leave with it. (The stack never sends such a frame; a raw
/// packet socket on the gateway can.)
#[inline(always)]
fn leaks_inside_source<P: Packet>(p: &P) -> bool {
    if p.load::<u16>(ipv4::ETH_TYPE_OFF) != Some(ipv4::ETH_P_IP_WIRE) {
        return false;
    }
    let Some(src) = p.load::<u32>(ipv4::ETH_HLEN + Ipv4::SRC_OFF) else {
        return false;
    };
    static_nat::lookup_out(src).is_some() || translates_source(src)
}
