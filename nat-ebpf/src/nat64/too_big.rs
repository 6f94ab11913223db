//! IPv4 packets for an IPv6 host that would not fit the inside link once
//! translated (20 bytes longer, a fragment 28). With DF set the sender is
//! told, as a router on its path would tell it: ICMP Fragmentation Needed
//! with the inside MTU less 20, from the public address it sent to,
//! quoting its header as it sent it — built in place of the packet and
//! sent back out of the interface it came in on. Without DF, RFC 7915 4.1
//! splits it into IPv6 fragments: TC does (split.rs); XDP, which cannot
//! send several packets, drops it (counted), as it does what cannot be
//! split.
//!
//! A packet whose TTL runs out here is answered the same way, with Time
//! Exceeded: the IPv6 stack that would otherwise drop it could only tell a
//! source under the prefix, which it cannot reach.
use nat_common::{
    Counter, EndpointKey,
    csum::{add32, fold},
    nat64::Nat64Config,
};

use crate::{
    maps::NAPT_OUT,
    nat64::header,
    packet::Packet,
    parse::ipv4::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4},
    translate::static_nat,
};

/// Length of the answer after the Ethernet header: IPv4 header, ICMP
/// header, the quoted IPv4 header and 8 bytes of its transport header.
pub const ANSWER_LEN: u32 = 56;

/// The answer's bytes after the Ethernet header.
pub struct Answer {
    pub ip: [u32; 5],
    pub icmp: [u32; 2],
    pub quote: [u32; 5],
    pub quote_l4: [u32; 2],
}

impl Answer {
    /// Its ICMP type (3 Fragmentation Needed, 11 Time Exceeded).
    #[inline(always)]
    pub fn icmp_type(&self) -> u8 {
        self.icmp[0].to_ne_bytes()[0]
    }
}

/// `Ok(None)`: the packet fits (or cannot be judged: no inside MTU known,
/// a GSO packet the stack segments); `Ok(Some)`: answer with this;
/// `Err`: drop it. `ip` is the packet as NAT44 left it (to the stand-in).
#[inline(always)]
pub fn check<P: Packet>(
    p: &P,
    ip: &Ipv4,
    cfg: &Nat64Config,
    gso: bool,
) -> Result<Option<Answer>, Counter> {
    let mtu = cfg.inside_mtu;
    let growth = if ip.later_fragment || ip.more_fragments {
        28
    } else {
        20
    };
    if mtu == 0 || gso || ip.tot_len + growth <= mtu {
        return Ok(None);
    }
    let flags: u16 = p.load(ip.off + 6).ok_or(Counter::Nat64DropMalformed)?;
    if flags & 0x4000u16.to_be() == 0 {
        return Err(Counter::Nat64DropTooBig);
    }
    let [m0, m1] = ((mtu - 20) as u16).to_be_bytes();
    build(p, ip, [3, 4], [0, 0, m0, m1], Counter::Nat64DropTooBig).map(Some)
}

/// The answer to a packet whose TTL ran out here (1 or 0: the hop to the
/// IPv6 host would take the last): ICMP Time Exceeded in transit, as a
/// router on its path would send it (RFC 7915 section 4: the translator
/// decrements the TTL before translating). `Err`: drop it unanswered.
#[inline(always)]
pub fn time_exceeded<P: Packet>(p: &P, ip: &Ipv4) -> Result<Answer, Counter> {
    build(p, ip, [11, 0], [0; 4], Counter::Nat64DropTtlExpired)
}

/// ICMP error `ty_code` with `rest` (the 4 bytes after its checksum) from
/// the public address the sender used, quoting its header as it sent it
/// and 8 bytes of the transport header; never about an error, a later
/// fragment or a header with options (`refused` then).
#[inline(always)]
fn build<P: Packet>(
    p: &P,
    ip: &Ipv4,
    ty_code: [u8; 2],
    rest: [u8; 4],
    refused: Counter,
) -> Result<Answer, Counter> {
    if ip.later_fragment || ip.hlen != 20 {
        return Err(refused);
    }
    // 8 transport bytes to quote, within the datagram (not its padding).
    if ip.l4() + 8 > ip.end {
        return Err(Counter::Nat64DropMalformed);
    }
    let l4: [u32; 2] = p.load(ip.l4()).ok_or(Counter::Nat64DropMalformed)?;
    // Where the translated port sits (the ICMP identifier for an echo),
    // and the public endpoint the sender used.
    let (port_word, port_half) = match ip.proto {
        IPPROTO_TCP | IPPROTO_UDP => (0, 1),
        IPPROTO_ICMP => {
            let [ty, ..] = l4[0].to_ne_bytes();
            if ty != 0 && ty != 8 {
                // Never an error about an error.
                return Err(refused);
            }
            (1, 0)
        }
        _ => return Err(refused),
    };
    let halves = |w: u32| {
        let [a, b, c, d] = w.to_ne_bytes();
        [u16::from_ne_bytes([a, b]), u16::from_ne_bytes([c, d])]
    };
    let inside_port = halves(l4[port_word])[port_half];
    let (public, public_port) = match static_nat::lookup_out(ip.dst) {
        Some(a) => (a, inside_port),
        None => {
            let key = EndpointKey {
                addr: ip.dst,
                port: inside_port,
                proto: ip.proto,
                _pad: 0,
            };
            // SAFETY: plain copy out of the map.
            let m = unsafe { NAPT_OUT.get(key) }.ok_or(refused)?;
            // (Ports are kept as they lie in the packet.)
            (m.addr, m.port)
        }
    };
    let join = |h: [u16; 2]| {
        let [a, b] = h[0].to_ne_bytes();
        let [c, d] = h[1].to_ne_bytes();
        u32::from_ne_bytes([a, b, c, d])
    };
    let mut hs = halves(l4[port_word]);
    hs[port_half] = public_port;
    let mut quote_l4 = l4;
    quote_l4[port_word] = join(hs);
    // The transport checksum as sent too: NAT44 moved it with the port it
    // put in (and for UDP the destination, in its pseudo-header).
    let (old, new) = (add32(0, inside_port as u32), add32(0, public_port as u32));
    if ip.proto == IPPROTO_UDP {
        let mut w = halves(quote_l4[1]);
        if w[1] != 0 {
            let c = header::csum_swap(w[1], add32(old, ip.dst), add32(new, public));
            w[1] = if c == 0 { 0xffff } else { c };
            quote_l4[1] = join(w);
        }
    } else if ip.proto == IPPROTO_ICMP && inside_port != public_port {
        // (An unchanged identifier left the checksum alone: RFC 1624's
        // update would turn a 0xffff into 0.)
        let mut w = halves(quote_l4[0]);
        w[1] = header::csum_swap(w[1], old, new);
        quote_l4[0] = join(w);
    }

    // The sender's header as it sent it: to the public address.
    let mut quote: [u32; 5] = p.load(ip.off).ok_or(Counter::Nat64DropMalformed)?;
    quote[4] = public;
    let [t, pr, _, _] = quote[2].to_ne_bytes();
    quote[2] = u32::from_ne_bytes([t, pr, 0, 0]);
    let mut qsum = 0;
    let mut i = 0;
    while i < 5 {
        qsum = add32(qsum, quote[i]);
        i += 1;
    }
    let [c0, c1] = (!fold(qsum)).to_ne_bytes();
    quote[2] = u32::from_ne_bytes([t, pr, c0, c1]);

    let rest = u32::from_ne_bytes(rest);
    let mut sum = add32(add32(0, u16::from_ne_bytes(ty_code) as u32), rest);
    let mut j = 0;
    while j < 5 {
        sum = add32(sum, quote[j]);
        j += 1;
    }
    sum = add32(add32(sum, quote_l4[0]), quote_l4[1]);
    let [k0, k1] = (!fold(sum)).to_ne_bytes();
    let [ty, code] = ty_code;
    Ok(Answer {
        ip: header::ipv4_header(0, ANSWER_LEN, 0, 64, IPPROTO_ICMP, public, ip.src),
        icmp: [u32::from_ne_bytes([ty, code, k0, k1]), rest],
        quote,
        quote_l4,
    })
}
