//! Dynamic NAPT: outbound translation with in-kernel mapping creation,
//! inbound translation with RFC 4787 filtering, and ICMP queries/errors.
//! Static 1:1 maps are consulted before this (they take precedence).
use nat_common::{
    Counter, EVENT_PORTS_EXHAUSTED, EVENT_QUOTE_MAX, EndpointKey, Event, FILTER_ADDRESS,
    FILTER_ADDRESS_AND_PORT, FilterKey, InsideEndpoint, MAPPING_FORWARD, Mapping, NatConfig,
    SessionKey, TH_ACK, TH_SYN, csum,
};

use crate::{
    clock, counters,
    frag::table as frag,
    maps::{FILTER, NAPT_IN, NAPT_OUT},
    napt::{
        alloc,
        config::{config, in_pool, is_internal},
        session::{self, Slot, Touch},
    },
    packet::Packet,
    parse::{
        icmp::{self, InnerField},
        ipv4::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4},
        verify,
    },
    verdict::Verdict,
};

/// Where the "port" of a flow lies and which checksum covers it.
#[derive(Clone, Copy)]
struct Ports {
    /// Offset of the inside/public port (source outbound, destination
    /// inbound) or of the ICMP identifier.
    our_port_off: u32,
    our_port: u16,
    /// The remote side's port (0 for ICMP queries).
    remote_port: u16,
    csum_off: u32,
    kind: Kind,
    tcp_flags: u8,
}

impl Ports {
    /// The segment's TCP flags if it is TCP (what its session's state
    /// follows).
    #[inline(always)]
    fn tcp(&self) -> Option<u8> {
        (self.kind == Kind::Tcp).then_some(self.tcp_flags)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Udp,
    IcmpQuery,
}

/// Reads the ports of a TCP/UDP segment or the identifier of an ICMP
/// query; `outbound` says which port is ours. `Err` means truncated.
#[inline(always)]
fn ports<P: Packet>(p: &P, ip: &Ipv4, outbound: bool) -> Result<Option<Ports>, ()> {
    let l4 = ip.l4();
    match ip.proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let tcp = ip.proto == IPPROTO_TCP;
            if !ip.has(l4, if tcp { 20 } else { 8 }) {
                return Err(());
            }
            // Both ports in one load.
            let [sport, dport]: [u16; 2] = p.load(l4).ok_or(())?;
            let tcp_flags: u8 = if tcp { p.load(l4 + 13).ok_or(())? } else { 0 };
            let (our_port_off, our_port, remote_port) = if outbound {
                (l4, sport, dport)
            } else {
                (l4 + 2, dport, sport)
            };
            Ok(Some(Ports {
                our_port_off,
                our_port,
                remote_port,
                csum_off: l4 + if tcp { 16 } else { 6 },
                kind: if tcp { Kind::Tcp } else { Kind::Udp },
                tcp_flags,
            }))
        }
        _ => Ok(None),
    }
}

/// ICMP query (echo) whose identifier is the "port".
#[inline(always)]
fn icmp_query(ip: &Ipv4, id: u16) -> Ports {
    let l4 = ip.l4();
    Ports {
        our_port_off: l4 + icmp::ID_OFF,
        our_port: id,
        remote_port: 0,
        csum_off: l4 + icmp::CSUM_OFF,
        kind: Kind::IcmpQuery,
        tcp_flags: 0,
    }
}

/// The NAPT_OUT key of an outbound packet.
#[inline(always)]
fn out_key(ip: &Ipv4, ports: &Ports) -> EndpointKey {
    EndpointKey {
        addr: ip.src,
        port: ports.our_port,
        proto: ip.proto,
        _pad: 0,
    }
}

#[inline(always)]
fn bytes_of(ip: &Ipv4) -> u64 {
    (ip.end - ip.off) as u64
}

/// Rewrites address (source outbound, destination inbound) and port with
/// every checksum that covers them.
#[inline(always)]
fn rewrite<P: Packet>(
    p: &mut P,
    ip: &Ipv4,
    outbound: bool,
    new_addr: u32,
    ports: &Ports,
    new_port: u16,
) -> Option<()> {
    let (addr_off, old_addr) = if outbound {
        (ip.off + Ipv4::SRC_OFF, ip.src)
    } else {
        (ip.off + Ipv4::DST_OFF, ip.dst)
    };
    let check_off = ip.off + Ipv4::CHECK_OFF;
    let check = ip.check;
    p.store(addr_off, &new_addr)?;
    p.store(check_off, &csum::replace4(check, old_addr, new_addr))?;
    match ports.kind {
        Kind::Tcp | Kind::Udp => {
            let udp = ports.kind == Kind::Udp;
            p.fix_l4_csum_for_addr(ports.csum_off, old_addr, new_addr, udp)?;
            if new_port != ports.our_port {
                p.fix_l4_csum_for_port(ports.csum_off, ports.our_port, new_port, udp)?;
                p.store(ports.our_port_off, &new_port)?;
            }
        }
        Kind::IcmpQuery => {
            // ICMP has no pseudo-header: only the identifier is covered,
            // and ICMP checksums are always complete (never offloaded).
            if new_port != ports.our_port {
                let c: u16 = p.load(ports.csum_off)?;
                let fixed = csum::replace2_icmp(c, ports.our_port, new_port);
                p.store(ports.csum_off, &fixed)?;
                p.store(ports.our_port_off, &new_port)?;
            }
        }
    }
    Some(())
}

/// Outbound: `None` if the packet is not NAPT's to translate.
#[inline(always)]
pub fn egress<P: Packet>(p: &mut P, ip: &Ipv4) -> Option<Verdict> {
    let cfg = config()?;
    if ip.later_fragment {
        if !is_internal(ip.src) {
            return None;
        }
        // Ours from here on: it must leave translated or not at all, never
        // with its inside source address.
        if let Some(v) = frag::translate_later(p, ip, false) {
            return Some(v);
        }
        // Its first fragment may still come: hold it (TC), else drop it.
        if frag::hold(p, ip, false) {
            return Some(Verdict::Drop);
        }
        return Some(drop(Counter::DropFragmentUnknown));
    }
    let parsed = ports(p, ip, true);
    // A TCP/UDP segment with a mapping needs no INTERNAL lookup (the
    // costliest of the path): the mapping proves its source is inside,
    // since reload refuses to remove an internal prefix that live bindings
    // use and forwards must point inside.
    let found = match &parsed {
        Ok(Some(ports)) => NAPT_OUT.get_ptr_mut(out_key(ip, ports)),
        _ => None,
    };
    if found.is_none() && !is_internal(ip.src) {
        return None;
    }
    // Ours from here on: it must leave translated or not at all, never
    // with its inside source address.
    let ports = match parsed {
        Ok(Some(ports)) => ports,
        Err(()) => return Some(drop(Counter::EgressDroppedMalformed)),
        Ok(None) if ip.proto == IPPROTO_ICMP => {
            let l4 = ip.l4();
            if !ip.has(l4, icmp::HDR_LEN) {
                return Some(drop(Counter::EgressDroppedMalformed));
            }
            let icmp_type: u8 = p.load(l4)?;
            if icmp::is_error(icmp_type) {
                return Some(egress_icmp_error(p, ip));
            }
            if icmp_type != icmp::ICMP_ECHO {
                return Some(drop(Counter::DropUnsupported));
            }
            icmp_query(ip, p.load(l4 + icmp::ID_OFF)?)
        }
        Ok(None) => return Some(drop(Counter::DropUnsupported)),
    };

    let now = clock::now();
    let key = out_key(ip, &ports);
    let found = match ports.kind {
        Kind::IcmpQuery => NAPT_OUT.get_ptr_mut(key),
        Kind::Tcp | Kind::Udp => found,
    };
    let skey = out_session_key(ip, &ports);
    let mapping = match found {
        Some(m) => m,
        None => {
            let first = session::first(ip.dst, ports.remote_port, &out_touch(ip, &ports, now), now);
            match alloc::allocate(&cfg, &key, first, now) {
                // The packet's session is the new mapping's first.
                Ok(alloc::Allocated::Created(m)) => return Some(finish_out(p, ip, &ports, &m)),
                Ok(alloc::Allocated::Raced(m)) => m,
                Err(reason) => {
                    if reason == Counter::DropPortsExhausted {
                        report_exhaustion(p, ip);
                    }
                    return Some(drop(reason));
                }
            }
        }
    };
    let slot = session::find(mapping, &skey);
    Some(translate_out(
        p, ip, &cfg, &ports, mapping, &skey, slot, now,
    ))
}

/// What an outbound packet contributes to its session.
#[inline(always)]
fn out_touch(ip: &Ipv4, ports: &Ports, now: u64) -> Touch {
    Touch {
        outbound: true,
        bytes: bytes_of(ip),
        tcp_flags: ports.tcp(),
        now: Some(now),
    }
}

/// The session key of an outbound packet.
#[inline(always)]
fn out_session_key(ip: &Ipv4, ports: &Ports) -> SessionKey {
    SessionKey {
        inside_addr: ip.src,
        remote_addr: ip.dst,
        inside_port: ports.our_port,
        remote_port: ports.remote_port,
        proto: ip.proto,
        _pad: [0; 3],
    }
}

/// Outbound, once the mapping is known (and its session looked up): counts
/// the packet on the mapping and the session (creating it), rewrites,
/// counts.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn translate_out<P: Packet>(
    p: &mut P,
    ip: &Ipv4,
    cfg: &NatConfig,
    ports: &Ports,
    m: *mut Mapping,
    skey: &SessionKey,
    slot: Option<Slot>,
    now: u64,
) -> Verdict {
    let touch = out_touch(ip, ports, now);
    match slot {
        Some(slot) => session::refresh(m, slot, &touch),
        None => {
            // SAFETY: `m` points at a map value; plain reads.
            let (addr, port) = unsafe { ((*m).addr, (*m).port) };
            if let Err(reason) = session::create(cfg, skey, addr, port, &touch) {
                return drop(reason);
            }
        }
    }
    // SAFETY: value in the map; a racing write of the same timestamp field
    // is harmless.
    let mapping = unsafe {
        (*m).last_seen = now;
        &*m
    };
    session::note_remote(cfg, mapping, slot, ip.proto, ip.dst, now);
    finish_out(p, ip, ports, mapping)
}

/// Outbound, once the packet is counted: rewrites its source to the
/// mapping's public endpoint and counts it.
#[inline(always)]
fn finish_out<P: Packet>(p: &mut P, ip: &Ipv4, ports: &Ports, mapping: &Mapping) -> Verdict {
    let (addr, port) = (mapping.addr, mapping.port);
    if rewrite(p, ip, true, addr, ports, port).is_none() {
        return drop(Counter::EgressDroppedMalformed);
    }
    frag::remember(p, ip, false, addr);
    counters::bump(Counter::EgressTranslated);
    counters::add(Counter::EgressBytes, bytes_of(ip));
    Verdict::Translated
}

/// An outbound TCP/UDP packet of an established NAPT flow, as the fast
/// path finds it: its mapping and its session to this remote endpoint.
pub struct Established {
    cfg: NatConfig,
    ports: Ports,
    mapping: *mut Mapping,
    slot: Slot,
    skey: SessionKey,
}

/// The established flow of an outbound packet, or `None` (not NAPT's, a
/// new flow or remote endpoint, not TCP/UDP, a fragment, cut short).
#[inline(always)]
pub fn established<P: Packet>(p: &P, ip: &Ipv4) -> Option<Established> {
    let cfg = config()?;
    if ip.later_fragment || ip.more_fragments {
        return None;
    }
    let ports = ports(p, ip, true).ok()??;
    // No INTERNAL lookup: a mapping proves the source is inside (see
    // `egress`).
    let mapping = NAPT_OUT.get_ptr_mut(out_key(ip, &ports))?;
    let skey = out_session_key(ip, &ports);
    let slot = session::find(mapping, &skey)?;
    Some(Established {
        cfg,
        ports,
        mapping,
        slot,
        skey,
    })
}

/// Translates the packet of an [`established`] flow, reusing what that
/// found (no second lookup of the mapping or the session).
#[inline(always)]
pub fn egress_established<P: Packet>(p: &mut P, ip: &Ipv4, e: &Established) -> Verdict {
    let now = clock::now();
    translate_out(
        p,
        ip,
        &e.cfg,
        &e.ports,
        e.mapping,
        &e.skey,
        Some(e.slot),
        now,
    )
}

/// An ICMP error sent by an inside host about a datagram it received
/// through a mapping (e.g. port unreachable): the quoted destination is
/// the inside endpoint and must become the public one.
#[inline(always)]
fn egress_icmp_error<P: Packet>(p: &mut P, ip: &Ipv4) -> Verdict {
    let l4 = ip.l4();
    let Some(inner) = icmp::embedded(p, ip, l4) else {
        return drop(Counter::EgressDroppedMalformed);
    };
    let Some((port_off, port, m)) = quoted_destination_mapping(p, &inner) else {
        return drop(Counter::DropIcmpErrorNoMapping);
    };
    if translate_outer_addr(p, ip, true, m.addr).is_none()
        || inner
            .rewrite(
                p,
                InnerField::Dst,
                m.addr,
                Some((port_off, port, m.port)),
                l4 + icmp::CSUM_OFF,
            )
            .is_none()
    {
        return drop(Counter::EgressDroppedMalformed);
    }
    counters::bump(Counter::EgressTranslated);
    counters::add(Counter::EgressBytes, bytes_of(ip));
    counters::bump(Counter::IcmpErrorsTranslated);
    Verdict::Translated
}

/// The mapping of the inside endpoint an ICMP error's quoted datagram was
/// sent to (its destination), with the quoted port's (or identifier's)
/// offset and value; `None` when the quote names no port or no mapping.
/// Errors never create or refresh mappings.
#[inline(always)]
pub fn quoted_destination_mapping<P: Packet>(
    p: &P,
    inner: &icmp::Embedded,
) -> Option<(u32, u16, Mapping)> {
    let (port_off, port) = inner.port(p, InnerField::Dst)?;
    let key = EndpointKey {
        addr: inner.addr(InnerField::Dst),
        port,
        proto: inner.ip.proto,
        _pad: 0,
    };
    // SAFETY: plain copy.
    let m = unsafe { NAPT_OUT.get(key).copied() }?;
    Some((port_off, port, m))
}

/// Rewrites only the outer address (ICMP errors: no pseudo-header).
#[inline(always)]
fn translate_outer_addr<P: Packet>(p: &mut P, ip: &Ipv4, outbound: bool, new: u32) -> Option<()> {
    let (off, old) = if outbound {
        (ip.off + Ipv4::SRC_OFF, ip.src)
    } else {
        (ip.off + Ipv4::DST_OFF, ip.dst)
    };
    let check_off = ip.off + Ipv4::CHECK_OFF;
    let check = ip.check;
    p.store(off, &new)?;
    p.store(check_off, &csum::replace4(check, old, new))
}

/// Inbound: `None` if the packet is not to a mapping (the stack gets it).
#[inline(always)]
pub fn ingress<P: Packet>(p: &mut P, ip: &Ipv4) -> Option<Verdict> {
    let cfg = config()?;
    if ip.later_fragment {
        if let Some(v) = frag::translate_later(p, ip, true) {
            return Some(v);
        }
        // Its first fragment may still come (RFC 4787 REQ-14): hold it
        // where the hook can (TC), if it is addressed to a pool address.
        if in_pool(&cfg, ip.dst) && frag::hold(p, ip, true) {
            return Some(Verdict::Drop);
        }
        // Not one of ours (the stack gets it: it may be the gateway's own).
        counters::bump(Counter::IngressPassedFragment);
        return Some(Verdict::Pass);
    }
    let v = ingress_first(p, ip, &cfg);
    if v.is_some() || !in_pool(&cfg, ip.dst) {
        return v;
    }
    if unsolicited_syn(p, ip, &cfg) {
        // RFC 5382 REQ-4: no answer (the stack would send an RST at once),
        // so a simultaneous open whose outbound SYN follows can still
        // succeed; ports outside the range are the gateway's own.
        return Some(drop(Counter::DropUnsolicitedSyn));
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

/// Whether `ip` is a TCP SYN (without ACK) to a port in the NAPT range: a
/// connection attempt to a public endpoint no mapping admitted.
#[inline(always)]
fn unsolicited_syn<P: Packet>(p: &P, ip: &Ipv4, cfg: &NatConfig) -> bool {
    if ip.proto != IPPROTO_TCP || !ip.has(ip.l4(), 20) {
        return false;
    }
    // Two-byte loads: data offset and flags, then the ports.
    let Some([_, flags]) = p.load::<[u8; 2]>(ip.l4() + 12) else {
        return false;
    };
    if flags & (TH_SYN | TH_ACK) != TH_SYN {
        return false;
    }
    let Some([_, dport]) = p.load::<[u16; 2]>(ip.l4()) else {
        return false;
    };
    let port = u16::from_be(dport);
    port >= cfg.port_min && port <= cfg.port_max
}

/// Whether the transport header NAPT reads (ports, ICMP type and
/// identifier) is cut short.
#[inline(always)]
fn transport_cut(ip: &Ipv4) -> bool {
    let need = match ip.proto {
        IPPROTO_TCP => 20,
        IPPROTO_UDP => 8,
        IPPROTO_ICMP => icmp::HDR_LEN,
        _ => return false,
    };
    !ip.has(ip.l4(), need)
}

/// Inbound, a whole datagram or a first fragment.
#[inline(always)]
fn ingress_first<P: Packet>(p: &mut P, ip: &Ipv4, cfg: &NatConfig) -> Option<Verdict> {
    let cfg = *cfg;
    let ports = match ports(p, ip, false) {
        Ok(Some(ports)) => ports,
        Err(()) => return None,
        Ok(None) if ip.proto == IPPROTO_ICMP => {
            let l4 = ip.l4();
            if !ip.has(l4, icmp::HDR_LEN) {
                return None;
            }
            let icmp_type: u8 = p.load(l4)?;
            if icmp::is_error(icmp_type) {
                return ingress_icmp_error(p, ip, &cfg);
            }
            if icmp_type != icmp::ICMP_ECHOREPLY {
                // Echo requests to the pool address are the gateway's own.
                return None;
            }
            icmp_query(ip, p.load(l4 + icmp::ID_OFF)?)
        }
        Ok(None) => return None,
    };
    let key = EndpointKey {
        addr: ip.dst,
        port: ports.our_port,
        proto: ip.proto,
        _pad: 0,
    };
    // SAFETY: plain copy.
    let inside = unsafe { NAPT_IN.get(key).copied() }?;
    // Missing only for a moment while another CPU creates the mapping.
    let m = NAPT_OUT.get_ptr_mut(inside.key(ip.proto))?;
    let skey = SessionKey {
        inside_addr: inside.addr,
        remote_addr: ip.src,
        inside_port: inside.port,
        remote_port: ports.remote_port,
        proto: ip.proto,
        _pad: [0; 3],
    };
    let touch = Touch {
        outbound: false,
        bytes: bytes_of(ip),
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
            if !admitted(&cfg, &inside, m, &key, ip.src) {
                return Some(drop(Counter::DropFiltered));
            }
            if let Err(reason) = session::create(&cfg, &skey, ip.dst, ports.our_port, &touch) {
                return Some(drop(reason));
            }
        }
    }
    if rewrite(p, ip, false, inside.addr, &ports, inside.port).is_none() {
        counters::bump(Counter::IngressPassedMalformed);
        return Some(Verdict::Pass);
    }
    frag::remember(p, ip, true, inside.addr);
    counters::bump(Counter::IngressTranslated);
    counters::add(Counter::IngressBytes, bytes_of(ip));
    Some(Verdict::Translated)
}

/// RFC 4787 §5 filtering: may `remote` reach the inside endpoint, with
/// which it has no session yet?
#[inline(always)]
fn admitted(
    cfg: &NatConfig,
    inside: &InsideEndpoint,
    m: *const Mapping,
    public: &EndpointKey,
    remote_addr: u32,
) -> bool {
    if inside.flags & MAPPING_FORWARD != 0 {
        return true;
    }
    match cfg.filtering {
        FILTER_ADDRESS => {
            // SAFETY: `m` points at a map value; plain reads.
            let first = unsafe { &(*m).first };
            if first.live != 0 && first.remote_addr == remote_addr {
                return true;
            }
            let fkey = FilterKey {
                public_addr: public.addr,
                remote_addr,
                public_port: public.port,
                proto: public.proto,
                _pad: 0,
            };
            // SAFETY: presence check only.
            unsafe { FILTER.get(fkey).is_some() }
        }
        // Only the exact remote endpoint the inside host sent to, and it
        // has no session (or it would not be asked).
        FILTER_ADDRESS_AND_PORT => false,
        _ => true,
    }
}

/// An ICMP error from outside about a datagram an inside host sent through
/// a mapping: the quoted source is the public endpoint.
#[inline(always)]
fn ingress_icmp_error<P: Packet>(p: &mut P, ip: &Ipv4, cfg: &NatConfig) -> Option<Verdict> {
    let l4 = ip.l4();
    let inner = icmp::embedded(p, ip, l4)?;
    // The quoted datagram must be one this host sent (spoofed errors about
    // other addresses are not ours to translate).
    if inner.addr(InnerField::Src) != ip.dst {
        return None;
    }
    let (port_off, port) = inner.port(p, InnerField::Src)?;
    let key = EndpointKey {
        addr: inner.addr(InnerField::Src),
        port,
        proto: inner.ip.proto,
        _pad: 0,
    };
    // SAFETY: plain copy. ICMP errors never create or refresh mappings.
    let Some(inside) = (unsafe { NAPT_IN.get(key).copied() }) else {
        // About a datagram from a pool port no mapping holds: nobody
        // inside sent it, and the gateway's own use ports outside the
        // range.
        let p = u16::from_be(port);
        if p >= cfg.port_min && p <= cfg.port_max {
            return Some(drop(Counter::DropInboundIcmpErrorNoMapping));
        }
        return None;
    };
    if !verify::icmp_error_checksums(p, ip, l4, &inner) {
        return Some(drop(Counter::DropIcmpErrorBadChecksum));
    }
    if translate_outer_addr(p, ip, false, inside.addr).is_none()
        || inner
            .rewrite(
                p,
                InnerField::Src,
                inside.addr,
                Some((port_off, port, inside.port)),
                l4 + icmp::CSUM_OFF,
            )
            .is_none()
    {
        counters::bump(Counter::IngressPassedMalformed);
        return Some(Verdict::Pass);
    }
    counters::bump(Counter::IngressTranslated);
    counters::add(Counter::IngressBytes, bytes_of(ip));
    counters::bump(Counter::IcmpErrorsTranslated);
    Some(Verdict::Translated)
}

#[inline(always)]
fn drop(reason: Counter) -> Verdict {
    counters::bump(reason);
    Verdict::Drop
}

/// Hands the agent what it needs to answer ICMP "administratively
/// prohibited" (code 13) to the inside host: the IPv4 header and the first
/// 8 bytes after it. Never blocks: a full ring just loses the event.
#[inline(always)]
fn report_exhaustion<P: Packet>(p: &P, ip: &Ipv4) {
    let quote_len = ip.hlen + 8;
    let mut ev = Event {
        kind: EVENT_PORTS_EXHAUSTED,
        quote_len,
        quote: [0; EVENT_QUOTE_MAX],
    };
    // hlen + 8 is a multiple of 4 between 28 and 68: copy it in 4-byte
    // words so a short packet with options is quoted exactly.
    let mut i = 0;
    while i < EVENT_QUOTE_MAX / 4 {
        let at = i * 4;
        if at as u32 >= quote_len {
            break;
        }
        let Some(w) = p.load::<[u8; 4]>(ip.off + at as u32) else {
            return;
        };
        ev.quote[at..at + 4].copy_from_slice(&w);
        i += 1;
    }
    crate::events::emit(&ev);
}
