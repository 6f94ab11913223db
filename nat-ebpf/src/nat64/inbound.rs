//! IPv4 -> IPv6 (the external interface's ingress, tail-called once NAT44
//! has turned the destination into a stand-in): the packet becomes IPv6
//! from the remote address under the NAT64 prefix to the host the stand-in
//! stands for (RFC 7915 section 4), and goes to the stack, which routes it
//! inside.
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, xdp_action},
    helpers::generated::bpf_xdp_adjust_head,
    programs::{TcContext, XdpContext},
};
use nat_common::{
    Counter,
    nat64::{NAT64_WKP, is_non_global, is_stand_in},
};

use crate::{
    counters,
    maps::NAT64_IDS,
    nat64::{
        config,
        header::{
            self, ICMP_ECHO, ICMP_ECHOREPLY, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, as_field,
            csum_swap, icmpv6_pseudo_rest, sum4, sum6,
        },
        icmp_error,
    },
    packet::{Packet, TcPacket, XdpPacket},
    parse::{
        ipv4::{self, ETH_HLEN, ETH_TYPE_OFF, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4},
        ipv6::{ETH_P_IPV6_WIRE, words_of},
    },
};

/// ETH_P_IPV6 for bpf_skb_change_proto (network order).
const ETH_P_IPV6_BE: u16 = 0x86ddu16.to_be();
/// How much longer a packet gets: its IPv6 header is 20 bytes longer;
/// an ICMP error's quoted header too.
const GROWTH: i32 = 20;
const GROWTH_ERROR: i32 = 40;

/// What the grown packet gets written into it: its IPv6 header, and for
/// an ICMP error its ICMPv6 and quoted IPv6 headers too. (One struct, not
/// an enum of two sizes: LLVM copies an enum's unused bytes from whatever
/// register is at hand, and the verifier refuses a pointer stored there.)
struct Translated {
    headers: icmp_error::Headers,
    error: bool,
}

impl Translated {
    #[inline(always)]
    fn datagram(ip6: [u32; 10]) -> Self {
        Translated {
            headers: icmp_error::Headers {
                ip6,
                icmp6: [0; 2],
                quote6: [0; 10],
            },
            error: false,
        }
    }

    #[inline(always)]
    fn growth(&self) -> i32 {
        if self.error { GROWTH_ERROR } else { GROWTH }
    }
}

#[inline(always)]
pub fn process_tc(ctx: &TcContext) -> i32 {
    let mut p = TcPacket { ctx };
    let t = match prepare(&mut p) {
        Ok(Some(t)) => t,
        Ok(None) => return TC_ACT_OK,
        Err(reason) => {
            counters::bump(reason);
            return TC_ACT_SHOT;
        }
    };
    // 20 bytes more header room after the MAC header; skb->protocol and
    // GSO follow. An error needs 20 more for its quote's header.
    let grown = ctx.change_proto(ETH_P_IPV6_BE, 0).is_ok()
        && (!t.error || ctx.adjust_room(GROWTH, BPF_ADJ_ROOM_MAC, 0).is_ok());
    if !grown || finish(&mut p, &t).is_none() {
        counters::bump(Counter::Nat64DropMalformed);
        return TC_ACT_SHOT;
    }
    TC_ACT_OK
}

#[inline(always)]
pub fn process_xdp(ctx: &XdpContext) -> u32 {
    let t = match prepare(&mut XdpPacket::new(ctx)) {
        Ok(Some(t)) => t,
        Ok(None) => return xdp_action::XDP_PASS,
        Err(reason) => {
            counters::bump(reason);
            return xdp_action::XDP_DROP;
        }
    };
    let growth = t.growth();
    // SAFETY: helper on our own frame; the old bounds are not used after.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -growth) } != 0 {
        counters::bump(Counter::Nat64DropMalformed);
        return xdp_action::XDP_DROP;
    }
    let mut p = XdpPacket::new(ctx);
    // The Ethernet header moves to the new front.
    let eth: Option<[u8; 14]> = p.load(growth as u32);
    if eth.and_then(|e| p.store(0, &e)).is_none() || finish(&mut p, &t).is_none() {
        counters::bump(Counter::Nat64DropMalformed);
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

/// Writes the Ethernet type and the new headers into the grown packet.
#[inline(always)]
fn finish<P: Packet>(p: &mut P, t: &Translated) -> Option<()> {
    p.store(ETH_TYPE_OFF, &ETH_P_IPV6_WIRE)?;
    let h = &t.headers;
    p.store(ETH_HLEN, &h.ip6)?;
    if t.error {
        p.store(ETH_HLEN + 40, &h.icmp6)?;
        // (Counted in icmp_errors_translated by NAT44 already.)
        p.store(ETH_HLEN + 48, &h.quote6)?;
    }
    counters::bump(Counter::Nat64In);
    Some(())
}

/// Everything up to the header's growth: the transport checksum fixed for
/// the IPv6 pseudo-header, the new header built. `Ok(None)`: not for a
/// stand-in after all (passed).
#[inline(always)]
fn prepare<P: Packet>(p: &mut P) -> Result<Option<Translated>, Counter> {
    let Some(ip) = ipv4::outer_ipv4(p) else {
        return Ok(None);
    };
    if !is_stand_in(ip.dst) {
        return Ok(None);
    }
    let cfg = config().ok_or(Counter::Nat64DropNoHost)?;
    // SAFETY: plain copy out of the map.
    let host = unsafe { NAT64_IDS.get(&ip.dst) }.ok_or(Counter::Nat64DropNoHost)?;
    let dst6 = words_of(&host.addr);
    let v4_src = ip.src.to_ne_bytes();
    if cfg.flags & NAT64_WKP != 0 && is_non_global(v4_src) {
        return Err(Counter::Nat64DropNonGlobal);
    }
    // Options would change the header's growth; fragments need a
    // fragment header (not yet).
    if ip.hlen != 20 || ip.tot_len == 0 || ip.later_fragment || ip.more_fragments {
        return Err(Counter::Nat64DropUnsupported);
    }
    let src6 = words_of(&cfg.embed(v4_src));
    let l4 = ip.l4();
    let payload_len = ip.tot_len - ip.hlen;
    let new = sum6(sum6(0, &src6), &dst6);
    let old = sum4(ip.src, ip.dst);
    match ip.proto {
        IPPROTO_TCP => {
            need(&ip, l4, 20)?;
            p.fix_l4_csum_for_addr(l4 + 16, as_field(old), as_field(new), false)
                .ok_or(Counter::Nat64DropMalformed)?;
        }
        IPPROTO_UDP => {
            need(&ip, l4, 8)?;
            // A UDP datagram without checksum would need one computed over
            // its payload (RFC 7915 section 4.5): not yet, dropped.
            let check: u16 = p.load(l4 + 6).ok_or(Counter::Nat64DropMalformed)?;
            if check == 0 {
                return Err(Counter::Nat64DropMalformed);
            }
            p.fix_l4_csum_for_addr(l4 + 6, as_field(old), as_field(new), true)
                .ok_or(Counter::Nat64DropMalformed)?;
        }
        IPPROTO_ICMP => {
            need(&ip, l4, 8)?;
            let [ty, code]: [u8; 2] = p.load(l4).ok_or(Counter::Nat64DropMalformed)?;
            if icmp_error::is_error(ty) {
                let h = icmp_error::prepare(p, &ip, cfg, &src6, &dst6)?;
                return Ok(Some(Translated {
                    headers: h,
                    error: true,
                }));
            }
            let new_ty = match ty {
                ICMP_ECHO => ICMPV6_ECHO_REQUEST,
                ICMP_ECHOREPLY => ICMPV6_ECHO_REPLY,
                _ => return Err(Counter::Nat64DropUnsupported),
            };
            let check: u16 = p.load(l4 + 2).ok_or(Counter::Nat64DropMalformed)?;
            let old_word = u16::from_ne_bytes([ty, code]) as u64;
            let new_word = u16::from_ne_bytes([new_ty, code]) as u64;
            let pseudo = new + icmpv6_pseudo_rest(payload_len);
            let fixed = csum_swap(check, old_word, pseudo + new_word);
            p.store(l4, &[new_ty, code])
                .ok_or(Counter::Nat64DropMalformed)?;
            p.store(l4 + 2, &fixed).ok_or(Counter::Nat64DropMalformed)?;
        }
        _ => return Err(Counter::Nat64DropUnsupported),
    }
    let [tos, ttl]: [u8; 2] = [
        p.load(ip.off + 1).ok_or(Counter::Nat64DropMalformed)?,
        p.load(ip.off + Ipv4::TTL_OFF)
            .ok_or(Counter::Nat64DropMalformed)?,
    ];
    Ok(Some(Translated::datagram(header::ipv6_header(
        tos,
        payload_len,
        ip.proto,
        ttl,
        &src6,
        &dst6,
    ))))
}

#[inline(always)]
fn need(ip: &Ipv4, off: u32, n: u32) -> Result<(), Counter> {
    if ip.has(off, n) {
        Ok(())
    } else {
        Err(Counter::Nat64DropMalformed)
    }
}
