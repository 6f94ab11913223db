//! ICMP errors the gateway itself sends about an inbound packet it
//! translated (README "How NAPT behaves"): leaving the external interface,
//! their quote names an inside endpoint, which becomes the public one
//! again; an error quoting an inside host no binding names is dropped.
//! The outer header is the gateway's own and stays.

use super::Rule;
use nat_common::Counter;

use super::icmp::{self, Side};
use super::parse::{ICMP, Ip};
use super::rewrite::{Edit, Slot};
use super::{Ctx, Verdict};

/// An outbound frame neither static NAT nor NAPT claimed. `None`: not an
/// error about a translated packet (the stack's own, passed).
pub fn egress(ctx: &mut Ctx, frame: &[u8], ip: &Ip) -> Option<Verdict> {
    let l4 = ip.l4();
    if ip.proto != ICMP || ip.later_fragment || !ip.has(l4, 8) || !icmp::is_error(frame[l4]) {
        return None;
    }
    let inner = icmp::embedded(frame, ip)?;
    if let Some(public) = ctx.st.static_out.get(&inner.dst).copied() {
        ctx.note(Rule::LocalErrorStatic);
        return Some(rewrite(ctx, ip, &inner, public, None));
    }
    if !ctx.st.napt_on() || !ctx.st.is_internal(inner.dst) {
        return None;
    }
    let (port_at, m) = match super::napt::quoted_destination_mapping(ctx, frame, &inner) {
        Ok(found) => found,
        Err(why) => {
            ctx.note(Rule::LocalErrorInsideHost);
            ctx.note(why);
            return Some(ctx.drop(Counter::DropIcmpErrorNoMapping));
        }
    };
    ctx.note(Rule::LocalErrorMapping);
    Some(rewrite(ctx, ip, &inner, m.addr, Some((port_at, m.port))))
}

fn rewrite(ctx: &mut Ctx, ip: &Ip, inner: &Ip, addr: u32, port: Option<(usize, u16)>) -> Verdict {
    let mut e = Edit::default();
    icmp::translate_inner(&mut e, inner, Side::Dst, addr, port);
    e.fix(Slot::transport(ip));
    e.apply(&mut ctx.out);
    ctx.bump(Counter::IcmpErrorsLocalTranslated);
    Verdict::Translated
}
