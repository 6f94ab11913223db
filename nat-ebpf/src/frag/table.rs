//! IPv4 fragments of NAPT flows (RFC 4787 REQ-14, RFC 5508 REQ-7).
//!
//! Only the first fragment carries ports, so it alone can find or create the
//! binding. Its translation is remembered per datagram (source,
//! destination, protocol, identification) and applied to the later
//! fragments, which need only their address and IPv4 checksum changed.
//! Each direction has its own table (`FRAGS_OUT`, `FRAGS_IN`).
use aya_ebpf::maps::LruHashMap;
use nat_common::{Counter, FRAG_TIMEOUT_NS, FragKey, FragValue, nat64::is_stand_in};

use crate::{
    clock, counters,
    frag::hold,
    maps::{FRAGS_IN, FRAGS_OUT},
    packet::Packet,
    parse::ipv4::Ipv4,
    rewrite::outer,
    verdict::{Direction, Verdict},
};

/// The table of datagrams going this way (every caller passes a constant,
/// so each call site uses one map).
#[inline(always)]
pub fn table(inbound: bool) -> &'static LruHashMap<FragKey, FragValue> {
    if inbound { &FRAGS_IN } else { &FRAGS_OUT }
}

/// The direction whose address a datagram going this way has translated.
#[inline(always)]
fn direction(inbound: bool) -> Direction {
    if inbound {
        Direction::Ingress
    } else {
        Direction::Egress
    }
}

#[inline(always)]
pub fn key(ip: &Ipv4, inbound: bool) -> FragKey {
    FragKey {
        src: ip.src,
        dst: ip.dst,
        id: ip.id,
        proto: ip.proto,
        inbound: inbound as u8,
    }
}

/// After translating the first fragment of a datagram: remember where its
/// translated address went, and send on any later fragment that arrived
/// before it.
#[inline(always)]
pub fn remember<P: Packet>(p: &mut P, ip: &Ipv4, inbound: bool, new_addr: u32) {
    if ip.later_fragment || !ip.more_fragments {
        return;
    }
    let k = key(ip, inbound);
    let v = FragValue {
        new_addr,
        _pad: 0,
        seen: clock::now(),
    };
    let _ = table(inbound).insert(k, v, 0);
    if let Some(ctx) = p.skb() {
        // Through NAT64: from an IPv6 host's stand-in, or to one.
        let nat64 = is_stand_in(if inbound { new_addr } else { ip.src });
        hold::release(ctx, &k, inbound, new_addr, nat64);
    }
}

/// A later fragment nobody can translate yet: hold it if the hook allows
/// (TC; XDP cannot clone packets).
#[inline(always)]
pub fn hold<P: Packet>(p: &mut P, ip: &Ipv4, inbound: bool) -> bool {
    match p.skb() {
        Some(ctx) => hold::hold(ctx, ip, &key(ip, inbound)),
        None => false,
    }
}

/// A later fragment: translate it as its first fragment was. `None` when
/// the first fragment was not seen (or is too old).
#[inline(always)]
pub fn translate_later<P: Packet>(p: &mut P, ip: &Ipv4, inbound: bool) -> Option<Verdict> {
    // SAFETY: plain copy.
    let v = unsafe { table(inbound).get(key(ip, inbound)).copied() }?;
    if clock::now().saturating_sub(v.seen) > FRAG_TIMEOUT_NS {
        return None;
    }
    let dir = direction(inbound);
    outer::addr(p, ip, dir, v.new_addr)?;
    counters::bump(Counter::FragmentsTranslated);
    counters::translated(dir, ip.bytes());
    Some(Verdict::Translated)
}
