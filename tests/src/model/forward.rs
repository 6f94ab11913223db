//! Forwarding a packet as a router would, from a BPF program (README
//! "Hairpinning", "Fast path"): along a route the FIB resolved, the TTL is
//! decremented (the IPv4 checksum following it), the MAC addresses become
//! the egress device's and the next hop's, and the packet is redirected to
//! the egress device. With the egress device known but its next hop not
//! resolved, TC redirects it for the kernel to resolve (the kernel then
//! writes the MAC addresses). Nothing is forwarded along "the stack must
//! have it".

use super::Rule;
use super::fib::Lookup;
use super::parse::Ip;
use super::rewrite::{Edit, Slot};
use super::{Ctx, Verdict};

/// Offset of the TTL in an IPv4 header.
pub const TTL_AT: usize = 8;

/// The TTL of the datagram `ip` of `frame`.
pub fn ttl(frame: &[u8], ip: &Ip) -> u8 {
    frame[ip.off + TTL_AT]
}

/// Sends `ctx.out` (whose IPv4 header is `ip`) along `route`: `None` if
/// the route does not forward (the caller decides what then).
pub fn send(ctx: &mut Ctx, ip: &Ip, route: Lookup) -> Option<Verdict> {
    match route {
        Lookup::Stack => None,
        Lookup::Resolved { smac, dmac, .. } => {
            decrement_ttl(ctx, ip);
            ctx.out[0..6].copy_from_slice(&dmac);
            ctx.out[6..12].copy_from_slice(&smac);
            ctx.note(Rule::ForwardedResolved);
            Some(Verdict::Redirected)
        }
        Lookup::NoNeigh { .. } => {
            decrement_ttl(ctx, ip);
            ctx.note(Rule::ForwardedNoNeigh);
            Some(Verdict::Redirected)
        }
    }
}

/// One hop less. The TTL of a packet checked at > 1 never wraps, but a
/// held fragment released into the packet brings its own TTL, unchecked:
/// 0 wraps to 255 as an 8-bit decrement does.
fn decrement_ttl(ctx: &mut Ctx, ip: &Ip) {
    let at = ip.off + TTL_AT;
    let mut e = Edit::default();
    e.byte(at, ctx.out[at].wrapping_sub(1))
        .fix(Slot::ip_header(ip));
    e.apply(&mut ctx.out);
}
