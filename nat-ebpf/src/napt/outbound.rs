//! Outbound NAPT (TC egress of the external interface): an inside
//! endpoint's packet finds its mapping — or creates it, in the kernel, on
//! its first packet — counts on its session and leaves with the mapping's
//! public endpoint as its source. The fast path reuses the same steps
//! through [`established`].
use nat_common::{Counter, EVENT_HOST_CAP, EVENT_PORTS_EXHAUSTED, Mapping, NatConfig, SessionKey};

use crate::{
    clock, counters, events,
    frag::table as frag,
    maps::NAPT_OUT,
    napt::{
        alloc,
        config::{config, is_internal},
        icmp_error,
        ports::{self, IcmpMsg, Ports},
        session::{self, Slot, Touch},
    },
    packet::Packet,
    parse::{
        icmp,
        ipv4::{IPPROTO_ICMP, Ipv4},
        l4::L4,
    },
    rewrite::outer,
    verdict::{Direction, Verdict},
};

/// Outbound: `None` if the packet is not NAPT's to translate.
#[inline(always)]
pub fn egress<P: Packet>(p: &mut P, ip: &Ipv4) -> Option<Verdict> {
    egress_from(p, ip, false)
}

/// Outbound for NAT64's IPv4 leg: the source is an IPv6 host's stand-in,
/// inside by construction (not in `INTERNAL`).
#[inline(always)]
pub fn egress_stand_in<P: Packet>(p: &mut P, ip: &Ipv4) -> Option<Verdict> {
    egress_from(p, ip, true)
}

#[inline(always)]
fn egress_from<P: Packet>(p: &mut P, ip: &Ipv4, stand_in: bool) -> Option<Verdict> {
    let cfg = config()?;
    if ip.later_fragment {
        return later_fragment(p, ip, stand_in);
    }
    let parsed = ports::of(p, ip, true);
    // A TCP/UDP segment with a mapping needs no INTERNAL lookup (the
    // costliest of the path): the mapping proves its source is inside,
    // since reload refuses to remove an internal prefix that live bindings
    // use and forwards must point inside.
    let found = match &parsed {
        Ok(Some(ports)) => NAPT_OUT.get_ptr_mut(ports.key(ip.src, ip.proto)),
        _ => None,
    };
    if found.is_none() && !stand_in && !is_internal(ip.src) {
        return None;
    }
    // Ours from here on: it must leave translated or not at all, never
    // with its inside source address.
    let ports = match parsed {
        Ok(Some(ports)) => ports,
        Err(()) => return Some(counters::drop(Counter::EgressDroppedMalformed)),
        Ok(None) if ip.proto == IPPROTO_ICMP => match ports::icmp(p, ip, icmp::ICMP_ECHO)? {
            IcmpMsg::Query(ports) => ports,
            IcmpMsg::Error => return Some(icmp_error::outbound(p, ip)),
            IcmpMsg::Cut => return Some(counters::drop(Counter::EgressDroppedMalformed)),
            IcmpMsg::Other => return Some(counters::drop(Counter::DropUnsupported)),
        },
        Ok(None) => return Some(counters::drop(Counter::DropUnsupported)),
    };

    let now = clock::now();
    let key = ports.key(ip.src, ip.proto);
    let found = match ports.ours.l4 {
        // ICMP queries were not looked up above.
        L4::Icmp => NAPT_OUT.get_ptr_mut(key),
        L4::Tcp | L4::Udp => found,
    };
    let mapping = match found {
        Some(m) => m,
        None => {
            let t = touch(ip, &ports, now);
            // `--tcp-pickup off`: only a SYN makes a TCP mapping.
            if t.pickup_refused(cfg) {
                return Some(counters::drop(Counter::DropTcpNoSyn));
            }
            let first = session::first(ip.dst, ports.remote_port, &t, now);
            match alloc::allocate(cfg, &key, first, now, stand_in) {
                // The packet's session is the new mapping's first.
                Ok(alloc::Allocated::Created(m)) => return Some(finish(p, ip, &ports, &m)),
                Ok(alloc::Allocated::Raced(m)) => m,
                Err(e) => {
                    match e.reason {
                        Counter::DropPortsExhausted => {
                            events::refused(p, ip, EVENT_PORTS_EXHAUSTED, e.public, 0)
                        }
                        Counter::DropHostPortCap => {
                            events::refused(p, ip, EVENT_HOST_CAP, e.public, e.limit)
                        }
                        _ => {}
                    }
                    return Some(counters::drop(e.reason));
                }
            }
        }
    };
    let skey = session_key(ip, &ports);
    let slot = session::find(mapping, &skey);
    Some(translate(p, ip, cfg, &ports, mapping, &skey, slot, now))
}

/// A later fragment from inside: translated as its first fragment was,
/// held until that comes (TC), or dropped.
#[inline(always)]
fn later_fragment<P: Packet>(p: &mut P, ip: &Ipv4, stand_in: bool) -> Option<Verdict> {
    if !stand_in && !is_internal(ip.src) {
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
    Some(counters::drop(Counter::DropFragmentUnknown))
}

/// What an outbound packet contributes to its session.
#[inline(always)]
fn touch(ip: &Ipv4, ports: &Ports, now: u64) -> Touch {
    Touch {
        outbound: true,
        bytes: ip.bytes(),
        tcp_flags: ports.tcp(),
        now: Some(now),
    }
}

/// The session key of an outbound packet.
#[inline(always)]
fn session_key(ip: &Ipv4, ports: &Ports) -> SessionKey {
    SessionKey::new(
        ip.src,
        ip.dst,
        ports.ours.value,
        ports.remote_port,
        ip.proto,
    )
}

/// Once the mapping is known (and its session looked up): counts the
/// packet on the mapping and the session (creating it), rewrites, counts.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn translate<P: Packet>(
    p: &mut P,
    ip: &Ipv4,
    cfg: &NatConfig,
    ports: &Ports,
    m: *mut Mapping,
    skey: &SessionKey,
    slot: Option<Slot>,
    now: u64,
) -> Verdict {
    let touch = touch(ip, ports, now);
    match slot {
        Some(slot) => session::refresh(m, slot, &touch),
        None => {
            // SAFETY: `m` points at a map value; plain reads.
            let (addr, port) = unsafe { ((*m).addr, (*m).port) };
            if let Err(reason) = session::create(cfg, skey, addr, port, &touch) {
                return counters::drop(reason);
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
    finish(p, ip, ports, mapping)
}

/// Once the packet is counted: rewrites its source to the mapping's public
/// endpoint and counts it.
#[inline(always)]
fn finish<P: Packet>(p: &mut P, ip: &Ipv4, ports: &Ports, mapping: &Mapping) -> Verdict {
    let (addr, port) = (mapping.addr, mapping.port);
    if outer::endpoint(p, ip, Direction::Egress, addr, &ports.ours, port).is_none() {
        return counters::drop(Counter::EgressDroppedMalformed);
    }
    frag::remember(p, ip, false, addr);
    counters::translated(Direction::Egress, ip.bytes());
    Verdict::Translated
}

/// An outbound TCP/UDP packet of an established NAPT flow, as the fast
/// path finds it: its mapping and its session to this remote endpoint.
pub struct Established {
    cfg: &'static NatConfig,
    ports: Ports,
    mapping: *mut Mapping,
    slot: Slot,
    skey: SessionKey,
}

impl Established {
    /// The packet moved `by` bytes towards the front (see
    /// `fastpath::Plan::moved`): the port's offsets follow.
    #[inline(always)]
    pub fn moved(&mut self, by: u32) {
        self.ports.ours.off -= by;
        self.ports.ours.csum_off -= by;
    }
}

/// The established flow of an outbound packet, or `None` (not NAPT's, a
/// new flow or remote endpoint, not TCP/UDP, a fragment, cut short).
#[inline(always)]
pub fn established<P: Packet>(p: &P, ip: &Ipv4) -> Option<Established> {
    let cfg = config()?;
    if ip.later_fragment || ip.more_fragments {
        return None;
    }
    let ports = ports::of(p, ip, true).ok()??;
    // No INTERNAL lookup: a mapping proves the source is inside (see
    // `egress`).
    let mapping = NAPT_OUT.get_ptr_mut(ports.key(ip.src, ip.proto))?;
    let skey = session_key(ip, &ports);
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
    translate(
        p,
        ip,
        e.cfg,
        &e.ports,
        e.mapping,
        &e.skey,
        Some(e.slot),
        now,
    )
}
