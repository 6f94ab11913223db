//! Static 1:1 NAT: the address alone is translated, in every packet of the
//! host (fragments included), with every checksum that covers it.

use super::Rule;
use nat_common::Counter;

use super::icmp::{self, Side};
use super::parse::{ICMP, Ip, TCP, UDP};
use super::rewrite::{Edit, Slot};
use super::{Ctx, Dir, Verdict};

pub fn translate(ctx: &mut Ctx, frame: &[u8], ip: &Ip, new: u32) -> Verdict {
    let addr_at = ip.off + if ctx.dir == Dir::Out { 12 } else { 16 };
    let mut edit = Edit::default();
    edit.addr(addr_at, new).fix(Slot::ip_header(ip));
    let l4 = ip.l4();
    let mut icmp_error = false;
    if !ip.later_fragment {
        match ip.proto {
            TCP | UDP => {
                if !ip.has(l4, if ip.proto == TCP { 20 } else { 8 }) {
                    ctx.note(Rule::StaticTransportCut);
                    return ctx.malformed();
                }
                edit.fix(Slot::transport(ip));
            }
            ICMP => {
                if !ip.has(l4, 8) {
                    ctx.note(Rule::StaticIcmpCut);
                    return ctx.malformed();
                }
                if icmp::is_error(frame[l4]) {
                    let Some(inner) = icmp::embedded(frame, ip) else {
                        ctx.note(Rule::StaticIcmpErrorNoQuote);
                        return ctx.malformed();
                    };
                    let (side, quoted) = match ctx.dir {
                        Dir::In => (Side::Src, ctx.st.static_in.get(&inner.src)),
                        Dir::Out => (Side::Dst, ctx.st.static_out.get(&inner.dst)),
                    };
                    if let Some(&q) = quoted {
                        if ctx.dir == Dir::In && !icmp::checksums_valid(frame, ip, &inner) {
                            ctx.note(Rule::StaticIcmpErrorBadChecksum);
                            return ctx.drop(Counter::DropIcmpErrorBadChecksum);
                        }
                        icmp::translate_inner(&mut edit, &inner, side, q, None);
                        edit.fix(Slot::transport(ip));
                        icmp_error = true;
                    } else {
                        ctx.note(Rule::StaticIcmpErrorOtherHost);
                    }
                }
            }
            _ => {}
        }
    }
    edit.apply(&mut ctx.out);
    if icmp_error {
        ctx.note(Rule::StaticIcmpErrorTranslated);
        ctx.bump(Counter::IcmpErrorsTranslated);
    }
    // Counted as the datagram's bytes present in the frame (as NAPT does).
    ctx.translated((ip.end - ip.off) as u64)
}
