//! Inbound NAPT (XDP or TC ingress of the external interface): a packet
//! to a public endpoint finds the mapping's inside endpoint, passes
//! filtering unless it belongs to a session already, counts on its session
//! and goes on with the inside endpoint as its destination. A packet to a
//! pool address that no mapping claims is the gateway's own, except an
//! unsolicited SYN into the port range and, under deterministic
//! allocation, any TCP segment to a host's port, which are dropped.
use nat_common::{
    Counter, NatConfig, SessionKey, TH_ACK, TH_SYN, deterministic::ALLOCATION_DETERMINISTIC,
};

use crate::{
    counters,
    frag::table as frag,
    maps::{NAPT_IN, NAPT_OUT},
    napt::{
        config::{config, in_pool},
        filtering, icmp_error,
        ports::{self, IcmpMsg},
        session::{self, Touch},
    },
    packet::Packet,
    parse::{
        icmp,
        ipv4::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4},
        l4::{TCP_DOFF_OFF, TCP_HLEN, UDP_HLEN},
    },
    rewrite::outer,
    verdict::{Direction, Verdict},
};

/// Inbound: `None` if the packet is not to a mapping (the stack gets it).
#[inline(always)]
pub fn ingress<P: Packet>(p: &mut P, ip: &Ipv4) -> Option<Verdict> {
    let cfg = config()?;
    if ip.later_fragment {
        return Some(later_fragment(p, ip, cfg));
    }
    let v = translate(p, ip, cfg);
    if v.is_some() || !in_pool(cfg, ip.dst) {
        return v;
    }
    if let Some(reason) = unmapped_tcp(p, ip, cfg) {
        return Some(counters::drop(reason));
    }
    if ip.more_fragments {
        // A first fragment that is not a mapping's (the gateway's own):
        // its later fragments go to the stack untouched — including any
        // held meanwhile, released now (an identity "translation").
        frag::remember(p, ip, true, ip.dst);
    }
    if transport_cut(ip) {
        // To one of our addresses but too short to tell which endpoint:
        // counted like a malformed packet to a static address.
        counters::bump(Counter::IngressPassedMalformed);
        return Some(Verdict::Pass);
    }
    None
}

/// A later fragment from outside: translated as its first fragment was,
/// held until that comes (TC, to a pool address), or passed to the stack.
#[inline(always)]
fn later_fragment<P: Packet>(p: &mut P, ip: &Ipv4, cfg: &NatConfig) -> Verdict {
    if let Some(v) = frag::translate_later(p, ip, true) {
        return v;
    }
    // Its first fragment may still come (RFC 4787 REQ-14): hold it
    // where the hook can (TC), if it is addressed to a pool address.
    if in_pool(cfg, ip.dst) && frag::hold(p, ip, true) {
        return Verdict::Drop;
    }
    // Not one of ours (the stack gets it: it may be the gateway's own).
    counters::bump(Counter::IngressPassedFragment);
    Verdict::Pass
}

/// A whole datagram or a first fragment: `None` if no mapping claims it.
#[inline(always)]
fn translate<P: Packet>(p: &mut P, ip: &Ipv4, cfg: &NatConfig) -> Option<Verdict> {
    let ports = match ports::of(p, ip, false) {
        Ok(Some(ports)) => ports,
        Err(()) => return None,
        Ok(None) if ip.proto == IPPROTO_ICMP => match ports::icmp(p, ip, icmp::ICMP_ECHOREPLY)? {
            IcmpMsg::Query(ports) => ports,
            IcmpMsg::Error => return icmp_error::inbound(p, ip, cfg),
            // Echo requests to the pool address are the gateway's own.
            IcmpMsg::Cut | IcmpMsg::Other => return None,
        },
        Ok(None) => return None,
    };
    let key = ports.key(ip.dst, ip.proto);
    // SAFETY: plain copy.
    let inside = unsafe { NAPT_IN.get(key).copied() }?;
    // Missing only for a moment while another CPU creates the mapping.
    let m = NAPT_OUT.get_ptr_mut(inside.key(ip.proto))?;
    let skey = SessionKey::new(
        inside.addr,
        ip.src,
        inside.port,
        ports.remote_port,
        ip.proto,
    );
    let touch = Touch {
        outbound: false,
        bytes: ip.bytes(),
        tcp_flags: ports.tcp(),
        now: None,
    };
    match session::find(m, &skey) {
        // A session with exactly this remote endpoint passes every
        // filtering mode: the inside host sent to it, or it was admitted
        // before. One lookup instead of a filter check and then the
        // session's.
        Some(slot) => session::refresh(m, slot, &touch),
        None => {
            if !filtering::admitted(cfg, &inside, m, &key, ip.src, touch.tcp_flags) {
                return Some(counters::drop(Counter::DropFiltered));
            }
            if let Err(reason) = session::create(cfg, &skey, ip.dst, ports.ours.value, &touch) {
                return Some(counters::drop(reason));
            }
        }
    }
    if outer::endpoint(
        p,
        ip,
        Direction::Ingress,
        inside.addr,
        &ports.ours,
        inside.port,
    )
    .is_none()
    {
        counters::bump(Counter::IngressPassedMalformed);
        return Some(Verdict::Pass);
    }
    frag::remember(p, ip, true, inside.addr);
    counters::translated(Direction::Ingress, ip.bytes());
    Some(Verdict::Translated)
}

/// A TCP segment to a pool port that no mapping claims, if NAPT must drop
/// it rather than hand it to the stack (which would answer with an RST):
/// * a SYN (without ACK) to a port of the NAPT range: RFC 5382 REQ-4, no
///   answer, so a simultaneous open whose outbound SYN follows can still
///   succeed (ports outside the range are the gateway's own);
/// * under deterministic allocation, any segment to a port of a host's
///   range: that port is the host's and nobody else's, and a segment for
///   it without a mapping belongs to a flow whose gateway failed over —
///   dropped, the flow goes on once the inside host's next segment (or
///   binding sync) recreates the mapping; a reset would end it.
#[inline(always)]
fn unmapped_tcp<P: Packet>(p: &P, ip: &Ipv4, cfg: &NatConfig) -> Option<Counter> {
    if ip.proto != IPPROTO_TCP || !ip.has(ip.l4(), TCP_HLEN) {
        return None;
    }
    // Two-byte loads: data offset and flags, then the ports.
    let [_, flags] = p.load::<[u8; 2]>(ip.l4() + TCP_DOFF_OFF)?;
    let [_, dport] = p.load::<[u16; 2]>(ip.l4())?;
    let port = u16::from_be(dport);
    if port < cfg.port_min || port > cfg.port_max {
        return None;
    }
    if flags & (TH_SYN | TH_ACK) == TH_SYN {
        return Some(Counter::DropUnsolicitedSyn);
    }
    let shares = cfg.det_hosts_per_addr as u64 * cfg.det_ports_per_host as u64;
    if cfg.allocation == ALLOCATION_DETERMINISTIC && ((port - cfg.port_min) as u64) < shares {
        return Some(Counter::DropTcpNoMapping);
    }
    None
}

/// Whether the transport header NAPT reads (ports, ICMP type and
/// identifier) is cut short.
#[inline(always)]
fn transport_cut(ip: &Ipv4) -> bool {
    let need = match ip.proto {
        IPPROTO_TCP => TCP_HLEN,
        IPPROTO_UDP => UDP_HLEN,
        IPPROTO_ICMP => icmp::HDR_LEN,
        _ => return false,
    };
    !ip.has(ip.l4(), need)
}
