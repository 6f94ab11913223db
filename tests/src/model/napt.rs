//! Dynamic NAPT (README "How NAPT behaves"): outbound packets of inside
//! hosts find or create their endpoint-independent mapping and leave with
//! the public endpoint; inbound packets to a mapping pass the filtering
//! mode and reach the inside endpoint; ICMP errors are translated both
//! ways but never create or refresh anything.
//!
//! Tables (layout 4): a mapping (`NAPT_OUT` value) holds the session whose
//! packet created it, its "first" session, until the agent expires that
//! session (then the slot stays empty for good); every other session is a
//! `SESSIONS` entry. `FILTER` records the remote addresses a mapping sent
//! to except through its live first session, whose own address the
//! mapping admits by itself.

use super::Rule;
use nat_common::{
    Counter, EVENT_QUOTE_MAX, EndpointKey, FILTER_ADDRESS, FILTER_ADDRESS_AND_PORT, FilterKey,
    FirstSession, InsideEndpoint, MAPPING_FORWARD, MAPPING_PEER, Mapping, SESSION_INBOUND, Session,
    SessionKey, TCP_PICKUP_OFF, TH_SYN,
};

use super::tcp;
use nat_common::deterministic::ALLOCATION_DETERMINISTIC;

use super::icmp::{self, Side};
use super::parse::{ICMP, Ip, TCP, UDP};
use super::rewrite::{Edit, Slot};
use super::{Ctx, Dir, NOW, Verdict, alloc, frag};

/// Our side's port (or ICMP identifier) and the remote's, as in the packet.
struct Flow {
    our_at: usize,
    our_port: u16,
    remote_port: u16,
    tcp_flags: u8,
    query: bool,
}

/// TCP/UDP ports; `Err` if the header is cut, `Ok(None)` for other
/// protocols.
fn ports(frame: &[u8], ip: &Ip, dir: Dir) -> Result<Option<Flow>, ()> {
    let l4 = ip.l4();
    let tcp = match ip.proto {
        TCP => true,
        UDP => false,
        _ => return Ok(None),
    };
    if !ip.has(l4, if tcp { 20 } else { 8 }) {
        return Err(());
    }
    let p = |at: usize| u16::from_ne_bytes([frame[at], frame[at + 1]]);
    let (our_at, remote_at) = match dir {
        Dir::Out => (l4, l4 + 2),
        Dir::In => (l4 + 2, l4),
    };
    Ok(Some(Flow {
        our_at,
        our_port: p(our_at),
        remote_port: p(remote_at),
        tcp_flags: if tcp { frame[l4 + 13] } else { 0 },
        query: false,
    }))
}

fn echo(frame: &[u8], ip: &Ip) -> Flow {
    let at = ip.l4() + 4;
    Flow {
        our_at: at,
        our_port: u16::from_ne_bytes([frame[at], frame[at + 1]]),
        remote_port: 0,
        tcp_flags: 0,
        query: true,
    }
}

/// What one packet adds to its session.
#[derive(Clone, Copy)]
struct Packet {
    out: bool,
    proto: u8,
    bytes: u64,
    /// TCP flags (TCP only).
    flags: u8,
}

impl Packet {
    /// The TCP state a session this packet opens starts in (0 if not TCP).
    fn opening_state(&self) -> u8 {
        if self.proto == TCP {
            tcp::opened(self.flags, self.out)
        } else {
            0
        }
    }
}

/// A session's changing fields, wherever it is kept (in its mapping or in
/// `SESSIONS`).
struct Fields<'a> {
    last_seen: &'a mut u64,
    packets_out: &'a mut u64,
    packets_in: &'a mut u64,
    bytes_out: &'a mut u64,
    bytes_in: &'a mut u64,
    tcp: &'a mut u8,
}

/// Counts a packet on an existing session. Outbound packets refresh every
/// session; inbound ones only TCP sessions (RFC 4787 REQ-6, RFC 5382).
fn count(f: Fields, p: Packet) {
    if p.out || p.proto == TCP {
        *f.last_seen = NOW;
    }
    if p.out {
        *f.packets_out += 1;
        *f.bytes_out += p.bytes;
    } else {
        *f.packets_in += 1;
        *f.bytes_in += p.bytes;
    }
    if p.proto == TCP {
        *f.tcp = tcp::after(*f.tcp, p.flags, p.out);
    }
}

/// The session a mapping's first packet makes: kept in the mapping.
fn first_session(remote: (u32, u16), p: Packet) -> FirstSession {
    FirstSession {
        remote_addr: remote.0,
        remote_port: remote.1,
        tcp: p.opening_state(),
        live: 1,
        last_seen: NOW,
        packets_out: p.out as u64,
        packets_in: (!p.out) as u64,
        bytes_out: if p.out { p.bytes } else { 0 },
        bytes_in: if p.out { 0 } else { p.bytes },
    }
}

/// Whether the mapping still holds its first session and that session is
/// the one with `remote` (address and port).
fn is_first(m: &Mapping, remote: (u32, u16)) -> bool {
    m.first.live != 0 && m.first.remote_addr == remote.0 && m.first.remote_port == remote.1
}

/// Counts a packet of the mapping of `inside` (its value `m`) on its
/// session: the mapping's first if that is the one with this remote
/// endpoint, else the `SESSIONS` entry of `key`, created (with `public` as
/// its public endpoint) if missing. `Err(reason)`: the session was missing
/// and could not be made — `SESSIONS` is full, or an inbound packet found
/// `--max-inbound-sessions` reached, or a TCP segment without SYN found
/// `--tcp-pickup off` (nothing changed; the packet is dropped).
fn touch(
    ctx: &mut Ctx,
    inside: &EndpointKey,
    m: &Mapping,
    key: SessionKey,
    public: (u32, u16),
    p: Packet,
) -> Result<(), Counter> {
    if is_first(m, (key.remote_addr, key.remote_port)) {
        ctx.note(Rule::FirstSession);
        let f = &mut ctx
            .st
            .napt_out
            .get_mut(inside)
            .expect("touch: the mapping is there")
            .first;
        count(
            Fields {
                last_seen: &mut f.last_seen,
                packets_out: &mut f.packets_out,
                packets_in: &mut f.packets_in,
                bytes_out: &mut f.bytes_out,
                bytes_in: &mut f.bytes_in,
                tcp: &mut f.tcp,
            },
            p,
        );
        return Ok(());
    }
    let full = ctx.st.sessions.len() >= ctx.st.capacity.sessions;
    let capped = !p.out && inbound_cap_reached(ctx);
    let no_syn = pickup_refused(ctx, p);
    match ctx.st.sessions.get_mut(&key) {
        Some(s) => count(
            Fields {
                last_seen: &mut s.last_seen,
                packets_out: &mut s.packets_out,
                packets_in: &mut s.packets_in,
                bytes_out: &mut s.bytes_out,
                bytes_in: &mut s.bytes_in,
                tcp: &mut s.tcp,
            },
            p,
        ),
        None if no_syn => {
            ctx.note(if p.out {
                Rule::NoSynNoSessionOut
            } else {
                Rule::NoSynNoSessionIn
            });
            return Err(Counter::DropTcpNoSyn);
        }
        None if capped => {
            ctx.note(Rule::InboundSessionCap);
            return Err(Counter::DropInboundSessionLimit);
        }
        None if full => {
            ctx.note(Rule::SessionTableFull);
            return Err(Counter::DropSessionTableFull);
        }
        None => {
            ctx.st.sessions.insert(
                key,
                Session {
                    created: NOW,
                    last_seen: NOW,
                    packets_out: p.out as u64,
                    packets_in: (!p.out) as u64,
                    bytes_out: if p.out { p.bytes } else { 0 },
                    bytes_in: if p.out { 0 } else { p.bytes },
                    public_addr: public.0,
                    public_port: public.1,
                    tcp: p.opening_state(),
                    flags: if p.out { 0 } else { SESSION_INBOUND },
                },
            );
            if !p.out {
                ctx.st.inbound_sessions += 1;
            }
            ctx.note(if m.first.live == 0 && m.flags & MAPPING_FORWARD == 0 {
                Rule::NewSessionFirstGone
            } else {
                Rule::NewSession
            });
            ctx.bump(Counter::NaptSessionsCreated);
        }
    }
    Ok(())
}

/// Whether `--tcp-pickup off` refuses the session `p` would open (README
/// "TCP sessions"): a TCP segment without SYN (an ACK, data, a FIN or an
/// RST alone) opens nothing; a known session takes it as always.
fn pickup_refused(ctx: &Ctx, p: Packet) -> bool {
    ctx.st.config.tcp_pickup == TCP_PICKUP_OFF && p.proto == TCP && p.flags & TH_SYN == 0
}

/// Whether inbound packets may create no more sessions (0: no cap).
fn inbound_cap_reached(ctx: &Ctx) -> bool {
    let cap = ctx.st.config.max_inbound_sessions as u64;
    cap != 0 && ctx.st.inbound_sessions >= cap
}

/// Rewrites our side's address and port (or identifier) and the checksums
/// covering them.
fn rewrite(ctx: &mut Ctx, ip: &Ip, flow: &Flow, addr: u32, port: u16) {
    let mut e = Edit::default();
    e.addr(ip.off + if ctx.dir == Dir::Out { 12 } else { 16 }, addr)
        .fix(Slot::ip_header(ip));
    if !flow.query {
        e.port(flow.our_at, port).fix(Slot::transport(ip));
    } else if port != flow.our_port {
        // ICMP has no pseudo-header: its checksum changes only with the
        // identifier.
        e.port(flow.our_at, port).fix(Slot::transport(ip));
    }
    e.apply(&mut ctx.out);
}

fn bytes(ip: &Ip) -> u64 {
    (ip.end - ip.off) as u64
}

/// Outbound. `None`: not NAPT's (the stack gets it untouched).
pub fn egress(ctx: &mut Ctx, frame: &[u8], ip: &Ip) -> Option<Verdict> {
    egress_from(ctx, frame, ip, false)
}

/// Outbound for NAT64's IPv4 leg: the source is an IPv6 host's stand-in,
/// an inside host whatever the inside prefixes. `None`: NAPT is off.
pub fn egress_stand_in(ctx: &mut Ctx, frame: &[u8], ip: &Ip) -> Option<Verdict> {
    egress_from(ctx, frame, ip, true)
}

fn egress_from(ctx: &mut Ctx, frame: &[u8], ip: &Ip, stand_in: bool) -> Option<Verdict> {
    if !ctx.st.napt_on() || !(stand_in || ctx.st.is_internal(ip.src)) {
        return None;
    }
    ctx.note(Rule::NaptOut);
    // From here the packet leaves translated or not at all.
    if ip.later_fragment {
        if let Some(v) = frag::translate_later(ctx, ip) {
            return Some(v);
        }
        if frag::hold(ctx, frame, ip) {
            return Some(Verdict::Drop);
        }
        ctx.note(Rule::NaptOutLaterFragmentUnknown);
        return Some(ctx.drop(Counter::DropFragmentUnknown));
    }
    let l4 = ip.l4();
    let flow = match ports(frame, ip, Dir::Out) {
        Ok(Some(f)) => f,
        Err(()) => {
            ctx.note(Rule::NaptOutTransportCut);
            return Some(ctx.drop(Counter::EgressDroppedMalformed));
        }
        Ok(None) if ip.proto == ICMP => {
            if !ip.has(l4, 8) {
                ctx.note(Rule::NaptOutIcmpCut);
                return Some(ctx.drop(Counter::EgressDroppedMalformed));
            }
            if icmp::is_error(frame[l4]) {
                return Some(egress_error(ctx, frame, ip));
            }
            if frame[l4] != icmp::ECHO_REQUEST {
                ctx.note(Rule::NaptOutIcmpOtherType);
                return Some(ctx.drop(Counter::DropUnsupported));
            }
            echo(frame, ip)
        }
        Ok(None) => {
            ctx.note(Rule::NaptOutNoPorts);
            return Some(ctx.drop(Counter::DropUnsupported));
        }
    };
    let key = EndpointKey {
        addr: ip.src,
        port: flow.our_port,
        proto: ip.proto,
        _pad: 0,
    };
    let remote = (ip.dst, flow.remote_port);
    let packet = Packet {
        out: true,
        proto: ip.proto,
        bytes: bytes(ip),
        flags: flow.tcp_flags,
    };
    let Some(m) = ctx.st.napt_out.get(&key).copied() else {
        // `--tcp-pickup off`: a TCP segment without SYN makes no mapping.
        if pickup_refused(ctx, packet) {
            ctx.note(Rule::NoSynNoMapping);
            return Some(ctx.drop(Counter::DropTcpNoSyn));
        }
        // A new mapping, holding this packet's session as its first: no
        // SESSIONS entry, no FILTER entry (the first session admits its
        // own remote address).
        let m = match alloc::allocate(ctx, &key, first_session(remote, packet)) {
            Ok(m) => m,
            Err(reason) => {
                if reason == Counter::DropPortsExhausted {
                    exhaustion_event(ctx, frame, ip);
                }
                return Some(ctx.drop(reason));
            }
        };
        rewrite(ctx, ip, &flow, m.addr, m.port);
        frag::remember(ctx, ip, m.addr);
        return Some(ctx.translated(bytes(ip)));
    };
    let skey = SessionKey {
        inside_addr: ip.src,
        remote_addr: ip.dst,
        inside_port: flow.our_port,
        remote_port: flow.remote_port,
        proto: ip.proto,
        _pad: [0; 3],
    };
    if let Err(reason) = touch(ctx, &key, &m, skey, (m.addr, m.port), packet) {
        return Some(ctx.drop(reason));
    }
    if let Some(m) = ctx.st.napt_out.get_mut(&key) {
        m.last_seen = NOW;
    }
    if ctx.st.config.filtering == FILTER_ADDRESS && !is_first(&m, remote) {
        let fkey = FilterKey {
            public_addr: m.addr,
            remote_addr: ip.dst,
            public_port: m.port,
            proto: ip.proto,
            _pad: 0,
        };
        // A new entry that finds the table full is not made; the packet
        // goes all the same.
        if ctx.st.filter.contains_key(&fkey) || ctx.st.filter.len() < ctx.st.capacity.filter {
            ctx.st.filter.insert(fkey, NOW);
        } else {
            ctx.note(Rule::FilterTableFull);
        }
    }
    rewrite(ctx, ip, &flow, m.addr, m.port);
    frag::remember(ctx, ip, m.addr);
    Some(ctx.translated(bytes(ip)))
}

/// The agent answers exhaustion with ICMP code 13; the program hands it
/// the IPv4 header and 8 bytes after it.
fn exhaustion_event(ctx: &mut Ctx, frame: &[u8], ip: &Ip) {
    let n = ip.hlen + 8;
    if ip.off + n <= frame.len() {
        let mut q = vec![0u8; EVENT_QUOTE_MAX];
        q[..n].copy_from_slice(&frame[ip.off..ip.off + n]);
        q.truncate(n);
        ctx.events.push(q);
    }
}

/// An inside host's ICMP error about a datagram it received through a
/// mapping: the quoted destination becomes the public endpoint.
fn egress_error(ctx: &mut Ctx, frame: &[u8], ip: &Ip) -> Verdict {
    let Some(inner) = icmp::embedded(frame, ip) else {
        ctx.note(Rule::NaptOutIcmpErrorNoQuote);
        return ctx.drop(Counter::EgressDroppedMalformed);
    };
    let (port_at, m) = match quoted_destination_mapping(ctx, frame, &inner) {
        Ok(found) => found,
        Err(why) => {
            ctx.note(why);
            return ctx.drop(Counter::DropIcmpErrorNoMapping);
        }
    };
    ctx.note(Rule::NaptOutIcmpErrorTranslated);
    let mut e = Edit::default();
    e.addr(ip.off + 12, m.addr).fix(Slot::ip_header(ip));
    icmp::translate_inner(&mut e, &inner, Side::Dst, m.addr, Some((port_at, m.port)));
    e.fix(Slot::transport(ip));
    e.apply(&mut ctx.out);
    ctx.bump(Counter::IcmpErrorsTranslated);
    ctx.translated(bytes(ip))
}

/// The mapping of the inside endpoint an ICMP error's quoted datagram was
/// sent to, with the quoted port's (or identifier's) offset; `Err` says
/// why there is none.
pub fn quoted_destination_mapping(
    ctx: &Ctx,
    frame: &[u8],
    inner: &Ip,
) -> Result<(usize, Mapping), Rule> {
    let (port_at, port) = icmp::port(frame, inner, Side::Dst).ok_or(Rule::QuoteNoPort)?;
    let key = EndpointKey {
        addr: inner.dst,
        port,
        proto: inner.proto,
        _pad: 0,
    };
    let m = ctx
        .st
        .napt_out
        .get(&key)
        .copied()
        .ok_or(Rule::QuoteUnmapped)?;
    Ok((port_at, m))
}

/// Inbound. `None`: not to a mapping (the stack gets it untouched).
pub fn ingress(ctx: &mut Ctx, frame: &[u8], ip: &Ip) -> Option<Verdict> {
    if !ctx.st.napt_on() {
        return None;
    }
    if ip.later_fragment {
        if let Some(v) = frag::translate_later(ctx, ip) {
            return Some(v);
        }
        if ctx.st.in_pool(ip.dst) && frag::hold(ctx, frame, ip) {
            return Some(Verdict::Drop);
        }
        ctx.note(Rule::NaptInLaterFragmentToStack);
        ctx.bump(Counter::IngressPassedFragment);
        return Some(Verdict::Pass);
    }
    let v = ingress_first(ctx, frame, ip);
    if v.is_some() || !ctx.st.in_pool(ip.dst) {
        return v;
    }
    match unmapped_tcp(ctx, frame, ip) {
        Some(Counter::DropUnsolicitedSyn) => {
            ctx.note(Rule::UnsolicitedSyn);
            return Some(ctx.drop(Counter::DropUnsolicitedSyn));
        }
        Some(reason) => {
            ctx.note(Rule::DeterministicTcpNoMapping);
            return Some(ctx.drop(reason));
        }
        None => {}
    }
    if ip.more_fragments {
        // The gateway's own datagram: its later fragments go to the stack
        // untouched too (an identity "translation").
        ctx.note(Rule::GatewayFirstFragment);
        frag::remember(ctx, ip, ip.dst);
    }
    // A pool address, but no way to tell which endpoint: malformed, as a
    // cut packet to a static address is.
    let need = match ip.proto {
        TCP => 20,
        UDP => 8,
        ICMP => 8,
        _ => return None,
    };
    if !ip.has(ip.l4(), need) {
        ctx.note(Rule::NaptInTransportCutToPool);
        ctx.bump(Counter::IngressPassedMalformed);
        return Some(Verdict::Pass);
    }
    None
}

/// A TCP segment (whole header present) to a pool port without a mapping
/// that is dropped, not the gateway's: a SYN without ACK to a port of the
/// NAPT range (unsolicited), or under deterministic allocation any segment
/// to a port some host's range holds (its gateway failed over).
fn unmapped_tcp(ctx: &Ctx, frame: &[u8], ip: &Ip) -> Option<Counter> {
    let l4 = ip.l4();
    if ip.proto != TCP || !ip.has(l4, 20) {
        return None;
    }
    let port = u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]);
    let flags = frame[l4 + 13];
    let c = &ctx.st.config;
    if !(c.port_min..=c.port_max).contains(&port) {
        return None;
    }
    if flags & 0x12 == 0x02 {
        return Some(Counter::DropUnsolicitedSyn);
    }
    let shares = u64::from(c.det_hosts_per_addr) * u64::from(c.det_ports_per_host);
    let held = u64::from(port - c.port_min) < shares;
    (c.allocation == ALLOCATION_DETERMINISTIC && held).then_some(Counter::DropTcpNoMapping)
}

fn ingress_first(ctx: &mut Ctx, frame: &[u8], ip: &Ip) -> Option<Verdict> {
    let l4 = ip.l4();
    let flow = match ports(frame, ip, Dir::In) {
        Ok(Some(f)) => f,
        Err(()) => return None,
        Ok(None) if ip.proto == ICMP => {
            if !ip.has(l4, 8) {
                return None;
            }
            if icmp::is_error(frame[l4]) {
                return ingress_error(ctx, frame, ip);
            }
            if frame[l4] != icmp::ECHO_REPLY {
                // Echo requests to a pool address are the gateway's own.
                return None;
            }
            echo(frame, ip)
        }
        Ok(None) => return None,
    };
    let key = EndpointKey {
        addr: ip.dst,
        port: flow.our_port,
        proto: ip.proto,
        _pad: 0,
    };
    let inside = ctx.st.napt_in.get(&key).copied()?;
    let out_key = EndpointKey {
        addr: inside.addr,
        port: inside.port,
        proto: ip.proto,
        _pad: 0,
    };
    // A public endpoint without its mapping is one being made or removed
    // at this moment: not ours (yet, or any more).
    let Some(m) = ctx.st.napt_out.get(&out_key).copied() else {
        ctx.note(Rule::PublicEndpointWithoutMapping);
        return None;
    };
    ctx.note(Rule::NaptIn);
    let skey = SessionKey {
        inside_addr: inside.addr,
        remote_addr: ip.src,
        inside_port: inside.port,
        remote_port: flow.remote_port,
        proto: ip.proto,
        _pad: [0; 3],
    };
    // A remote endpoint that already has a session with the inside
    // endpoint passes every filtering mode (the inside host sent to it, or
    // it was admitted before).
    let known = is_first(&m, (ip.src, flow.remote_port)) || ctx.st.sessions.contains_key(&skey);
    if !known && !admitted(ctx, &inside, &m, &key, ip.src, ip.proto, flow.tcp_flags) {
        ctx.note(Rule::Filtered);
        return Some(ctx.drop(Counter::DropFiltered));
    }
    let packet = Packet {
        out: false,
        proto: ip.proto,
        bytes: bytes(ip),
        flags: flow.tcp_flags,
    };
    if let Err(reason) = touch(ctx, &out_key, &m, skey, (ip.dst, flow.our_port), packet) {
        return Some(ctx.drop(reason));
    }
    rewrite(ctx, ip, &flow, inside.addr, inside.port);
    frag::remember(ctx, ip, inside.addr);
    Some(ctx.translated(bytes(ip)))
}

/// RFC 4787 §5 filtering of a remote endpoint without a session with the
/// inside endpoint; port forwards admit anyone; a mapping learned from a
/// peer gateway admits TCP segments without SYN from anyone.
#[allow(clippy::too_many_arguments)]
fn admitted(
    ctx: &mut Ctx,
    inside: &InsideEndpoint,
    m: &Mapping,
    public: &EndpointKey,
    remote: u32,
    proto: u8,
    tcp_flags: u8,
) -> bool {
    if inside.flags & MAPPING_FORWARD != 0 {
        return true;
    }
    if inside.flags & MAPPING_PEER != 0 {
        if proto == 6 && tcp_flags & TH_SYN == 0 {
            ctx.note(Rule::PeerMappingPickup);
            return true;
        }
        ctx.note(Rule::PeerMappingFiltered);
    }
    match ctx.st.config.filtering {
        FILTER_ADDRESS => {
            // The addresses the inside endpoint sent to: its live first
            // session's, and those in FILTER.
            if m.first.live != 0 && m.first.remote_addr == remote {
                ctx.note(Rule::AdmittedFirstSessionRemote);
                return true;
            }
            ctx.st.filter.contains_key(&FilterKey {
                public_addr: public.addr,
                remote_addr: remote,
                public_port: public.port,
                proto: public.proto,
                _pad: 0,
            })
        }
        // Only the remote endpoints the inside endpoint sent to, which all
        // have a session.
        FILTER_ADDRESS_AND_PORT => false,
        _ => true,
    }
}

/// An ICMP error from outside about a datagram an inside host sent through
/// its mapping: the quoted source is the public endpoint, and must be the
/// error's destination.
fn ingress_error(ctx: &mut Ctx, frame: &[u8], ip: &Ip) -> Option<Verdict> {
    let inner = icmp::embedded(frame, ip)?;
    if inner.src != ip.dst {
        return None;
    }
    let (port_at, port) = icmp::port(frame, &inner, Side::Src)?;
    let key = EndpointKey {
        addr: inner.src,
        port,
        proto: inner.proto,
        _pad: 0,
    };
    let Some(inside) = ctx.st.napt_in.get(&key).copied() else {
        let p = u16::from_be(port);
        if (ctx.st.config.port_min..=ctx.st.config.port_max).contains(&p) {
            ctx.note(Rule::NaptInIcmpErrorUnmapped);
            return Some(ctx.drop(Counter::DropInboundIcmpErrorNoMapping));
        }
        return None;
    };
    if !icmp::checksums_valid(frame, ip, &inner) {
        ctx.note(Rule::NaptInIcmpErrorBadChecksum);
        return Some(ctx.drop(Counter::DropIcmpErrorBadChecksum));
    }
    ctx.note(Rule::NaptInIcmpErrorTranslated);
    let mut e = Edit::default();
    e.addr(ip.off + 16, inside.addr).fix(Slot::ip_header(ip));
    icmp::translate_inner(
        &mut e,
        &inner,
        Side::Src,
        inside.addr,
        Some((port_at, inside.port)),
    );
    e.fix(Slot::transport(ip));
    e.apply(&mut ctx.out);
    ctx.bump(Counter::IcmpErrorsTranslated);
    Some(ctx.translated(bytes(ip)))
}
