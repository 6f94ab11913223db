//! Hairpinning (README "Hairpinning", "IPv4 fragments"; RFC 4787 REQ-9,
//! RFC 5382 REQ-8, RFC 5508 REQ-7), on an inside interface's TC ingress:
//! a packet addressed to one of xnat's public endpoints is translated
//! outbound (its source becomes the sender's public endpoint, creating its
//! mapping if needed) and then inbound (its destination becomes the inside
//! endpoint behind the public one; the filtering mode applies), exactly as
//! the external interface's two programs would, one after the other; then
//! the gateway forwards it itself (FIB lookup, TTL, MACs, redirect). The
//! stack cannot have it any more (its source is one of the gateway's own
//! addresses now): if the FIB does not forward it, it is dropped. A packet
//! with TTL ≤ 1 is left to the stack untranslated, which answers time
//! exceeded to the sender.

use super::Rule;
use nat_common::{Counter, EndpointKey, FragKey};

use super::fib::Query;
use super::icmp::{self, Side};
use super::parse::{self, ICMP, Ip, TCP, UDP};
use super::{Ctx, Dir, State, Verdict, forward};

fn public_endpoint(st: &State, addr: u32, port: u16, proto: u8) -> bool {
    st.napt_in.contains_key(&EndpointKey {
        addr,
        port,
        proto,
        _pad: 0,
    })
}

fn port_at(frame: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([frame[at], frame[at + 1]])
}

/// Whether `ip` is addressed to one of our public endpoints: a static
/// public address (any packet to it), or — NAPT on — a public endpoint
/// (`NAPT_IN`: a mapping's or a port forward's) on a pool address, named
/// by the TCP/UDP destination port or the identifier of an echo reply
/// (echo requests to a pool address are the gateway's own), or quoted as
/// the source of the datagram an ICMP error sent to that pool address is
/// about. The destination port is all it takes to know where a TCP/UDP
/// packet goes: a segment cut after its ports is still addressed to us
/// (and then the translation's to judge). An ICMP error quoting a public
/// endpoint but sent elsewhere is not addressed to us: the README's rule
/// names packets addressed to our endpoints (the data plane agrees with
/// pools of up to eight addresses, the fuzzer's; a larger pool skips its
/// pool check and hairpins such an error).
pub fn targets_us(st: &State, frame: &[u8], ip: &Ip) -> bool {
    if st.static_in.contains_key(&ip.dst) {
        return true;
    }
    if !st.napt_on() || !st.in_pool(ip.dst) {
        return false;
    }
    if ip.later_fragment {
        return later_fragment_hairpinned(st, ip);
    }
    let l4 = ip.l4();
    match ip.proto {
        TCP | UDP => ip.has(l4, 4) && public_endpoint(st, ip.dst, port_at(frame, l4 + 2), ip.proto),
        ICMP if ip.has(l4, 8) => match frame[l4] {
            icmp::ECHO_REPLY => public_endpoint(st, ip.dst, port_at(frame, l4 + 4), ICMP),
            t if icmp::is_error(t) => icmp::embedded(frame, ip).is_some_and(|inner| {
                icmp::port(frame, &inner, Side::Src)
                    .is_some_and(|(_, port)| public_endpoint(st, inner.src, port, inner.proto))
            }),
            _ => false,
        },
        _ => false,
    }
}

/// A later fragment (no ports) follows its first fragment through the
/// hairpin: that one's outbound translation was remembered under the
/// inside source (a NAPT sender), or — a static sender, whose fragments
/// are translated by address alone — its inbound one under the sender's
/// public address.
fn later_fragment_hairpinned(st: &State, ip: &Ip) -> bool {
    let key = |src: u32, inbound: u8| FragKey {
        src,
        dst: ip.dst,
        id: ip.id,
        proto: ip.proto,
        inbound,
    };
    st.frags.contains_key(&key(ip.src, 0))
        || st
            .static_out
            .get(&ip.src)
            .is_some_and(|public| st.frags.contains_key(&key(*public, 1)))
}

/// Translates a packet [`targets_us`] found (TTL > 1) both ways and
/// forwards it.
pub fn translate(ctx: &mut Ctx, frame: &[u8]) -> Verdict {
    ctx.note(Rule::Hairpin);
    ctx.dir = Dir::Out;
    if super::decide(ctx, frame) == Verdict::Drop {
        return Verdict::Drop;
    }
    // The inbound half works on what the outbound half made of it (a held
    // fragment released there included).
    let half = ctx.out.clone();
    ctx.dir = Dir::In;
    if super::decide(ctx, &half) == Verdict::Drop {
        return Verdict::Drop;
    }
    let Some(ip) = parse::outer(&ctx.out) else {
        ctx.note(Rule::HairpinNoIpv4After);
        return Verdict::Drop;
    };
    ctx.bump(Counter::HairpinTranslated);
    if super::to_stand_in(&ctx.out) {
        // To an IPv6 host's public endpoint: on as IPv6 (RFC 6146 3.8),
        // to the stack, which answers a packet too big for its link.
        ctx.note(Rule::HairpinToIpv6);
        return super::nat64::inbound::decide(ctx, super::nat64::inbound::Origin::Hairpin(half));
    }
    // Looked up without a length: the kernel checks the frame against the
    // egress device once the next hop is known (a packet too big for the
    // receiver's link is dropped: the gateway cannot fragment it here).
    let route = ctx.st.gateway.fib.lookup(&Query {
        src: ip.src,
        dst: ip.dst,
        iif: ctx.st.gateway.inside_ifindex,
        tot_len: 0,
        skb_len: Some(ctx.out.len()),
    });
    forward::send(ctx, &ip, route).unwrap_or_else(|| {
        ctx.note(Rule::HairpinNotForwarded);
        Verdict::Drop
    })
}
