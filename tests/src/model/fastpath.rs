//! The outbound fast path (README "Fast path"), on an inside interface
//! (TC, or XDP in front of it): a packet of an established flow — from a
//! static 1:1 host, or a TCP/UDP packet of a NAPT mapping that has a
//! session with this remote endpoint — is looked up in the FIB with its
//! inside addresses; if the FIB sends it out of the external interface it
//! is translated as the external interface's egress would, its TTL
//! decremented, and redirected there. Everything else passes untouched:
//! new flows, NAPT ICMP and fragments, TTL ≤ 1, packets for the gateway
//! or for another inside interface, packets too big for the route, a next
//! hop XDP cannot reach (unresolved, or a device not in `XDP_TARGETS`).
//!
//! A static host's packets are all established (its translation needs no
//! session): its ICMP and — on TC — its fragments take the fast path too;
//! the README's "ICMP, fragments" that take the normal path are NAPT's.

use super::Rule;
use nat_common::{Counter, EndpointKey, SessionKey};

use super::fib::{Lookup, Query};
use super::parse::{self, Ip, TCP, UDP};
use super::{Ctx, Dir, State, Verdict, forward};

/// A NAPT packet of an established flow: TCP or UDP (whole header), not a
/// fragment, whose mapping has a session with its remote endpoint (the
/// mapping's live first session, or one in `SESSIONS`).
pub fn napt_established(st: &State, frame: &[u8], ip: &Ip) -> bool {
    if !st.napt_on() || ip.later_fragment || ip.more_fragments {
        return false;
    }
    let l4 = ip.l4();
    let whole = match ip.proto {
        TCP => ip.has(l4, 20),
        UDP => ip.has(l4, 8),
        _ => false,
    };
    if !whole {
        return false;
    }
    let port = |at: usize| u16::from_ne_bytes([frame[at], frame[at + 1]]);
    let (sport, dport) = (port(l4), port(l4 + 2));
    let inside = EndpointKey {
        addr: ip.src,
        port: sport,
        proto: ip.proto,
        _pad: 0,
    };
    let Some(m) = st.napt_out.get(&inside) else {
        return false;
    };
    let first = m.first.live != 0 && (m.first.remote_addr, m.first.remote_port) == (ip.dst, dport);
    first
        || st.sessions.contains_key(&SessionKey {
            inside_addr: ip.src,
            remote_addr: ip.dst,
            inside_port: sport,
            remote_port: dport,
            proto: ip.proto,
            _pad: [0; 3],
        })
}

/// Whether the fast path may send along `route`: out of the external
/// interface only (traffic between inside interfaces is routed
/// untranslated), and from XDP only to a resolved next hop on a device
/// that takes XDP redirects.
pub fn sendable(ctx: &Ctx, route: Lookup) -> bool {
    let g = &ctx.st.gateway;
    let xdp = ctx.hook.is_xdp();
    let ext = g.ext_ifindex;
    ext != 0
        && match route {
            Lookup::Resolved { ifindex, .. } => {
                ifindex == ext && (!xdp || g.xdp_targets.contains(&ext))
            }
            Lookup::NoNeigh { ifindex } => !xdp && ifindex == ext,
            Lookup::Stack => false,
        }
}

/// The outbound fast path for the untouched packet `ip` of `frame`.
pub fn outbound(ctx: &mut Ctx, frame: &[u8], ip: &Ip) -> Verdict {
    if forward::ttl(frame, ip) <= 1 {
        ctx.note(Rule::FastPathTtlToStack);
        return Verdict::Pass;
    }
    let established =
        ctx.st.static_out.contains_key(&ip.src) || napt_established(&ctx.st, frame, ip);
    if !established {
        ctx.note(Rule::FastPathNotEstablished);
        return Verdict::Pass;
    }
    // Route first, with the inside addresses: what the FIB would not send
    // out of the external interface goes to the stack untranslated.
    let xdp = ctx.hook.is_xdp();
    let route = ctx.st.gateway.fib.lookup(&Query {
        src: ip.src,
        dst: ip.dst,
        iif: ctx.st.gateway.inside_ifindex,
        tot_len: ip.tot_len as u16,
        skb_len: (!xdp).then_some(frame.len()),
    });
    if !sendable(ctx, route) {
        ctx.note(Rule::FastPathNotSendable);
        return Verdict::Pass;
    }
    ctx.note(Rule::FastPath);
    ctx.dir = Dir::Out;
    let v = super::decide(ctx, frame);
    match v {
        Verdict::Translated => {}
        v => return v,
    }
    let Some(out) = parse::outer(&ctx.out) else {
        return Verdict::Drop;
    };
    match forward::send(ctx, &out, route) {
        Some(v) => {
            ctx.bump(Counter::FastPathOutbound);
            v
        }
        None => Verdict::Drop,
    }
}
