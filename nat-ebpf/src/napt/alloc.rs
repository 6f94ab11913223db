//! Choosing a public address and port for a new mapping, in the kernel, on
//! the first outbound packet (no round trip to user space).
//!
//! * Paired pooling (RFC 4787 REQ-2): an inside host always gets the same
//!   pool address — a hash of its address picks it at its first mapping,
//!   and `HOST_POOL` keeps it while the host holds bindings.
//! * Port preservation, then parity and range preservation (REQ-3, REQ-4):
//!   keep the inside port if free; otherwise random probes that keep its
//!   parity and its range (0–1023 or 1024–65535); then probes anywhere in
//!   the configured range. Probing is bounded.
//! * Deterministic allocation (RFC 7422): the host's pool address and port
//!   range are a function of its address (`nat_common::deterministic`);
//!   within the range, the inside port if free, else a fixed sequence that
//!   is a function of the inside port (parity first): no randomness, so a
//!   backup gateway recreates the same public endpoint for a flow.
//! * Reservation is the BPF_NOEXIST insert of the inbound entry itself, so
//!   two CPUs can never hand out the same public port.
use aya_ebpf::helpers::generated::bpf_get_prandom_u32;
use nat_common::{
    Counter, EndpointKey, FirstSession, InsideEndpoint, Mapping, NatConfig, PINNED_RECORDING,
    blocks::ALLOCATION_BLOCK,
    deterministic::{ALLOCATION_DETERMINISTIC, Layout, PORT_PROBES, host_index, port_probe},
    pool_index,
};

use crate::{
    maps::{HOST_POOL, HOST_PORTS, NAPT_IN, NAPT_OUT, POOL},
    napt::{
        blocks,
        config::{host_offset, in_pool},
    },
    parse::ipv4::IPPROTO_ICMP,
};

const BPF_NOEXIST: u64 = 1;
const E2BIG: i64 = 7;
const EEXIST: i64 = 17;
/// Probes that keep parity and range, then probes anywhere in the range.
const PROBES_PRESERVING: u32 = 16;
const PROBES_TOTAL: u32 = 32;

/// Why no mapping could be made (a drop reason counter), and the pool
/// address it would have had (0: none), for the agent's events.
pub struct AllocError {
    pub reason: Counter,
    pub public: u32,
    /// The cap reached, for [`Counter::DropHostPortCap`] (ports).
    pub limit: u32,
}

#[inline(always)]
pub(super) fn refused(reason: Counter, public: u32) -> AllocError {
    AllocError {
        reason,
        public,
        limit: 0,
    }
}

/// The pool address of `inside_addr`'s mappings: a hash of its address
/// over the pool — unless a reload changed the pool while the host held
/// bindings elsewhere: then the agent pinned it in `HOST_POOL` (and set
/// `pinned_hosts`), and it keeps that address while it is in the pool.
/// Nothing to look up or remember otherwise: the hash gives the same
/// answer for as long as the pool stays.
#[inline(always)]
pub(super) fn pool_addr(cfg: &NatConfig, inside_addr: u32) -> Option<u32> {
    if cfg.pinned_hosts != 0
        // SAFETY: plain u32 copied out.
        && let Some(addr) = unsafe { HOST_POOL.get(inside_addr).copied() }
        && in_pool(cfg, addr)
    {
        return Some(addr);
    }
    let idx = pool_index(inside_addr, cfg.pool_len);
    if idx >= cfg.pool_len {
        return None;
    }
    let addr = POOL.get(idx).copied()?;
    if cfg.pinned_hosts == PINNED_RECORDING {
        // A full table leaves the host to the agent's pinning pass.
        let _ = HOST_POOL.insert(inside_addr, addr, 0);
    }
    Some(addr)
}

/// Where a new mapping may take its public endpoint: the pool address,
/// the ports probed first (the inside port's range class, keeping parity)
/// and the ports it may have at all (host order, inclusive).
struct Room {
    public: u32,
    class: (u32, u32),
    all: (u32, u32),
}

/// The room of inside endpoint `key` (`want`: its port, host order).
#[inline(always)]
fn room(cfg: &NatConfig, key: &EndpointKey, want: u16) -> Option<Room> {
    if cfg.allocation == ALLOCATION_DETERMINISTIC {
        let index = host_index(u32::from_be(key.addr), host_offset(key.addr)?);
        let share = Layout::of(cfg).share(index)?;
        let public = POOL.get(share.slot).copied()?;
        let range = (share.lo as u32, share.hi as u32);
        return Some(Room {
            public,
            class: range,
            all: range,
        });
    }
    let public = pool_addr(cfg, key.addr)?;
    let (min, max) = (cfg.port_min as u32, cfg.port_max as u32);
    // The inside port's range class, clipped to the configured range.
    let (mut lo, mut hi) = if want < 1024 {
        (0u32, 1023u32)
    } else {
        (1024u32, 65535u32)
    };
    if lo < min {
        lo = min;
    }
    if hi > max {
        hi = max;
    }
    if lo > hi {
        lo = min;
        hi = max;
    }
    Some(Room {
        public,
        class: (lo, hi),
        all: (min, max),
    })
}

pub(super) enum Reserve {
    Taken,
    Done,
    Full,
}

#[inline(always)]
pub(super) fn reserve(public: u32, port: u16, proto: u8, inside: &InsideEndpoint) -> Reserve {
    let key = EndpointKey {
        addr: public,
        port: port.to_be(),
        proto,
        _pad: 0,
    };
    match NAPT_IN.insert(key, inside, BPF_NOEXIST) {
        Ok(()) => Reserve::Done,
        Err(e) if e as i64 == -EEXIST => Reserve::Taken,
        Err(e) if e as i64 == -E2BIG => Reserve::Full,
        Err(_) => Reserve::Full,
    }
}

/// [`reserve`] for probing: `Some(port)` once reserved, `None` if taken
/// (probe on), a full `NAPT_IN` an error (probing ends).
#[inline(always)]
fn take(
    public: u32,
    port: u16,
    proto: u8,
    inside: &InsideEndpoint,
) -> Result<Option<u16>, AllocError> {
    match reserve(public, port, proto, inside) {
        Reserve::Done => Ok(Some(port)),
        Reserve::Taken => Ok(None),
        Reserve::Full => Err(refused(Counter::DropMappingTableFull, public)),
    }
}

/// What [`allocate`] did.
pub enum Allocated {
    /// Made the mapping, with `first` as its first session.
    Created(Mapping),
    /// Another CPU mapped the same inside endpoint meanwhile: its mapping
    /// (the packet's session is still to be found or made).
    Raced(*mut Mapping),
}

/// Picks the public endpoint of a new mapping of `key` in its room
/// (dynamic and deterministic allocation) and reserves it.
#[inline(always)]
fn pick_in_room(
    cfg: &NatConfig,
    key: &EndpointKey,
    cap_key: u32,
    want: u16,
    inside: &InsideEndpoint,
) -> Result<(u32, u16), AllocError> {
    let Room {
        public,
        class: (lo, hi),
        all: (min, max),
    } = room(cfg, key, want).ok_or(refused(Counter::DropPortsExhausted, 0))?;
    if cfg.max_ports_per_host != 0 {
        // SAFETY: plain u32 read.
        let held = unsafe { HOST_PORTS.get(cap_key).copied().unwrap_or(0) };
        if held >= cfg.max_ports_per_host as u64 {
            return Err(AllocError {
                reason: Counter::DropHostPortCap,
                public,
                limit: cfg.max_ports_per_host,
            });
        }
    }
    if cfg.allocation == ALLOCATION_DETERMINISTIC {
        return match reserve_fixed(public, (lo, hi), want, key.proto, inside)? {
            Some(port) => Ok((public, port)),
            None => Err(refused(Counter::DropPortsExhausted, public)),
        };
    }
    let probes = Probes {
        preserving: PROBES_PRESERVING,
        total: PROBES_TOTAL,
    };
    match reserve_in(
        public,
        (lo, hi),
        (min, max),
        probes,
        want,
        key.proto,
        inside,
    )? {
        Some(port) => Ok((public, port)),
        None => Err(refused(Counter::DropPortsExhausted, public)),
    }
}

/// How many random probes [`reserve_in`] makes, and how many of them keep
/// the inside port's class and parity.
pub(super) struct Probes {
    pub preserving: u32,
    pub total: u32,
}

/// Reserves a port of `all` (inclusive, host order) on `public` for
/// `inside`: its own port `want` if that lies in `all` and is free; else
/// random probes, the first `probes.preserving` in `class` keeping `want`'s
/// parity (not for ICMP identifiers), the rest anywhere in `all`.
/// `Ok(None)`: probing found no free port; a full `NAPT_IN` ends it.
#[inline(always)]
pub(super) fn reserve_in(
    public: u32,
    (lo, hi): (u32, u32),
    (min, max): (u32, u32),
    probes: Probes,
    want: u16,
    proto: u8,
    inside: &InsideEndpoint,
) -> Result<Option<u16>, AllocError> {
    if (want as u32) >= min && (want as u32) <= max {
        if let Some(port) = take(public, want, proto, inside)? {
            return Ok(Some(port));
        }
    }
    let keep_parity = proto != IPPROTO_ICMP;
    let mut i = 0;
    while i < probes.total {
        let (a, b, parity) = if i < probes.preserving {
            (lo, hi, keep_parity)
        } else {
            (min, max, false)
        };
        let port = probe(a, b, parity.then_some(want));
        if port >= a && port <= b {
            if let Some(port) = take(public, port as u16, proto, inside)? {
                return Ok(Some(port));
            }
        }
        i += 1;
    }
    Ok(None)
}

/// Reserves a port of a deterministic host range `lo..=hi` on `public` for
/// `inside`: its own port `want` if that lies in the range and is free,
/// else the fixed sequence of [`port_probe`] — no randomness, so a backup
/// gateway with the same layout gives a flow it never saw the same public
/// port (stateless failover). `Ok(None)`: every probe was taken.
#[inline(always)]
fn reserve_fixed(
    public: u32,
    (lo, hi): (u32, u32),
    want: u16,
    proto: u8,
    inside: &InsideEndpoint,
) -> Result<Option<u16>, AllocError> {
    if (want as u32) >= lo && (want as u32) <= hi {
        if let Some(port) = take(public, want, proto, inside)? {
            return Ok(Some(port));
        }
    }
    let keep_parity = proto != IPPROTO_ICMP;
    let mut i = 0;
    while i < PORT_PROBES {
        let port = port_probe(lo as u16, hi as u16, want, keep_parity, proto, i);
        if let Some(port) = take(public, port, proto, inside)? {
            return Ok(Some(port));
        }
        i += 1;
    }
    Ok(None)
}

/// A random port of `a..=b`, with the parity of `parity_of` if given
/// (one step down, or up at the bottom: check it is still in range).
#[inline(always)]
pub(super) fn probe(a: u32, b: u32, parity_of: Option<u16>) -> u32 {
    let span = b - a + 1;
    // SAFETY: helper without arguments.
    let r = unsafe { bpf_get_prandom_u32() };
    let mut port = a + r.checked_rem(span).unwrap_or(0);
    if let Some(w) = parity_of
        && (port & 1) != (w as u32 & 1)
    {
        port = if port > a { port - 1 } else { port + 1 };
    }
    port
}

/// Creates the mapping of inside endpoint `key`, holding the packet's
/// session `first`. `stand_in`: `key.addr` is a NAT64 stand-in (a constant
/// at each call site, so NAT44's programs compile without NAT64's part).
#[inline(always)]
pub fn allocate(
    cfg: &NatConfig,
    key: &EndpointKey,
    first: FirstSession,
    now: u64,
    stand_in: bool,
) -> Result<Allocated, AllocError> {
    let want = u16::from_be(key.port);
    // The counter of the port cap: the host's own, or for an IPv6 host the
    // one of its prefix (`--nat64-host-prefix`).
    let cap_key = if stand_in && cfg.max_ports_per_host != 0 {
        crate::nat64::host::cap_key(key.addr, now).ok_or(refused(Counter::Nat64DropHostsFull, 0))?
    } else {
        key.addr
    };
    let inside = InsideEndpoint {
        addr: key.addr,
        port: key.port,
        flags: 0,
    };
    let (public, port) = if cfg.allocation == ALLOCATION_BLOCK {
        blocks::pick(cfg, key, want, &inside, now)?
    } else {
        pick_in_room(cfg, key, cap_key, want, &inside)?
    };

    let mapping = Mapping {
        addr: public,
        port: port.to_be(),
        flags: 0,
        created: now,
        last_seen: now,
        first,
    };
    if let Err(e) = NAPT_OUT.insert(key, mapping, BPF_NOEXIST) {
        let in_key = EndpointKey {
            addr: public,
            port: port.to_be(),
            proto: key.proto,
            _pad: 0,
        };
        let _ = NAPT_IN.remove(in_key);
        if e as i64 == -EEXIST {
            // Another CPU mapped the same inside endpoint first: use theirs.
            return NAPT_OUT
                .get_ptr_mut(key)
                .map(Allocated::Raced)
                .ok_or(refused(Counter::DropMappingTableFull, public));
        }
        return Err(refused(Counter::DropMappingTableFull, public));
    }
    if cfg.max_ports_per_host != 0 {
        match HOST_PORTS.get_ptr_mut(cap_key) {
            // SAFETY: the value lives in the map. The BPF target has no
            // atomic read-modify-write in core; a racing CPU may lose an
            // increment, and the agent recounts from NAPT_OUT every sweep,
            // so the cap is soft by at most a few ports for a moment.
            Some(held) => unsafe { *held += 1 },
            None => {
                let _ = HOST_PORTS.insert(cap_key, 1u64, 0);
            }
        }
    }
    crate::counters::bump(Counter::NaptMappingsCreated);
    crate::counters::bump(Counter::NaptSessionsCreated);
    crate::events::binding_created(key, &mapping);
    Ok(Allocated::Created(mapping))
}
