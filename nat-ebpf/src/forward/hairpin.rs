//! Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8, RFC 5508 REQ-7): an inside
//! host sending to the public endpoint of another inside host (a mapping,
//! a port forward or a static 1:1 address) reaches it as any outside host
//! would, and sees the sender's public endpoint as the source.
//!
//! Runs at TC ingress of the inside interfaces: a packet whose destination
//! is one of our public endpoints is translated twice — outbound on its
//! source, inbound on its destination (filtering applies) — and forwarded
//! straight back inside. Everything else passes untouched.
use nat_common::{Counter, EndpointKey};

use crate::{
    counters,
    forward::route,
    frag::table as frag,
    maps::{FRAGS_IN, FRAGS_OUT, NAPT_IN},
    napt::config::{config, in_pool},
    packet::Packet,
    parse::{
        icmp::{self, InnerField},
        ipv4::{self, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4},
        l4::DPORT_OFF,
    },
    translate::{pipeline, static_nat},
    verdict::{Direction, Verdict},
};

pub enum Hairpin {
    /// Not addressed to one of our public endpoints: the stack routes it.
    /// Carries the untouched packet's IPv4 header, if it has one, so the
    /// outbound fast path need not parse it again.
    NotOurs(Option<Ipv4>),
    Drop,
    /// Translated both ways; forward it (to the re-parsed header).
    Forward(Ipv4),
}

/// Pools up to this size are scanned before the NAPT_IN lookup (a scan
/// of a few array entries is cheaper than a hash lookup).
const SMALL_POOL: u32 = 8;

#[inline(always)]
fn public_endpoint(addr: u32, port: u16, proto: u8) -> bool {
    let key = EndpointKey {
        addr,
        port,
        proto,
        _pad: 0,
    };
    // SAFETY: presence check only.
    unsafe { NAPT_IN.get(key).is_some() }
}

/// A later fragment (no ports) belongs to a hairpinned datagram if its
/// first fragment was translated on the way out here — from a NAPT source
/// (the outbound key) or a static one (the inbound key, under the sender's
/// public address).
#[inline(always)]
fn later_fragment_hairpinned(ip: &Ipv4) -> bool {
    // SAFETY: presence checks only.
    unsafe {
        if FRAGS_OUT.get(frag::key(ip, false)).is_some() {
            return true;
        }
        match static_nat::lookup_out(ip.src) {
            Some(public) => {
                let mut k = frag::key(ip, true);
                k.src = public;
                FRAGS_IN.get(k).is_some()
            }
            None => false,
        }
    }
}

/// Whether `ip` is addressed to a public endpoint xnat translates.
#[inline(always)]
pub fn targets_us<P: Packet>(p: &P, ip: &Ipv4) -> bool {
    if static_nat::lookup_in(ip.dst).is_some() {
        return true;
    }
    let Some(cfg) = config() else {
        return false;
    };
    // Whatever NAPT can hairpin is addressed to a pool address (forwards
    // must use one too). With a small pool, checking that first spares
    // every ordinary outbound packet a hash lookup.
    if cfg.pool_len <= SMALL_POOL && !in_pool(cfg, ip.dst) {
        return false;
    }
    if ip.later_fragment {
        // Only datagrams to one of our pool addresses can be hairpinned
        // (static public addresses were handled above); the outbound key
        // alone also matches ordinary outbound traffic.
        return in_pool(cfg, ip.dst) && later_fragment_hairpinned(ip);
    }
    let l4 = ip.l4();
    match ip.proto {
        IPPROTO_TCP | IPPROTO_UDP => match p.load::<u16>(l4 + DPORT_OFF) {
            Some(dport) if ip.has(l4, 4) => public_endpoint(ip.dst, dport, ip.proto),
            _ => false,
        },
        IPPROTO_ICMP => {
            if !ip.has(l4, icmp::HDR_LEN) {
                return false;
            }
            let Some(icmp_type) = p.load::<u8>(l4) else {
                return false;
            };
            if icmp_type == icmp::ICMP_ECHOREPLY {
                return match p.load::<u16>(l4 + icmp::ID_OFF) {
                    Some(id) => public_endpoint(ip.dst, id, IPPROTO_ICMP),
                    None => false,
                };
            }
            if !icmp::is_error(icmp_type) {
                return false;
            }
            // An error about a datagram that came from a public endpoint.
            let Some(inner) = icmp::embedded(p, ip, l4) else {
                return false;
            };
            let Some((_, port)) = inner.port(p, InnerField::Src) else {
                return false;
            };
            public_endpoint(inner.ip.src, port, inner.ip.proto)
        }
        _ => false,
    }
}

#[inline(always)]
pub fn process<P: Packet>(p: &mut P) -> Hairpin {
    let Some(ip) = ipv4::outer_ipv4(p) else {
        return Hairpin::NotOurs(None);
    };
    if !targets_us(p, &ip) {
        return Hairpin::NotOurs(Some(ip));
    }
    // TTL 1: let the stack answer time exceeded before anything changes.
    match route::ttl(p, &ip) {
        Some(t) if t > 1 => {}
        _ => return Hairpin::NotOurs(Some(ip)),
    }
    if pipeline::process(p, Direction::Egress) == Verdict::Drop {
        return Hairpin::Drop;
    }
    if pipeline::process(p, Direction::Ingress) == Verdict::Drop {
        return Hairpin::Drop;
    }
    match ipv4::outer_ipv4(p) {
        Some(ip) => {
            counters::bump(Counter::HairpinTranslated);
            Hairpin::Forward(ip)
        }
        None => Hairpin::Drop,
    }
}
