//! A new mapping's public endpoint (README "How NAPT behaves"): the
//! allocator's choice is read back through the [`Oracle`] and checked
//! against the rules instead of re-deriving its hash and random probes.
//!
//! * paired pooling: a host's mappings all use one pool address, the same
//!   one every time (remembered across the fuzzer's state resets);
//! * port preservation: the inside port if it is in the range and free;
//! * otherwise a free port in the range, keeping parity (not for ICMP) and
//!   range class (0–1023 / 1024–65535) unless most such ports are taken;
//! * failure ("ports exhausted", bounded probing) is only acceptable when
//!   the inside port could not be kept and at least a quarter of the range
//!   is in use (below that, 16 random probes missing every free port is
//!   less likely than 1 in 10^9);
//! * `--max-ports-per-host`: a host holding that many ports gets none;
//! * full tables: the public port is reserved by inserting the `NAPT_IN`
//!   entry, then `NAPT_OUT` is inserted; either insert failing for want
//!   of room drops the packet ("mapping table full", no further probing,
//!   the reservation undone). Which of "ports exhausted" and "table full"
//!   a failure is depends on the random probes when the inside port
//!   cannot be kept (the first probe of a free port meets the full
//!   table), so the oracle says, and the model checks the tables' counts
//!   allow it; when the inside port is free it is tried first, so a full
//!   table must be the reason.
//! * deterministic allocation (RFC 7422): the host's pool address and port
//!   range come from its number among the inside addresses (prefixes in
//!   ascending order), worked out here from the prefixes and CONFIG's
//!   layout: the public address must be that one, the port in that range,
//!   the inside port kept if it lies there and is free, else exactly the
//!   first free port of the fixed sequence (`port_probe`, a function of
//!   the inside port — what makes failover stateless); no free port in
//!   the sequence, no mapping; a host the layout does not reach (beyond
//!   the pool) gets no port. No paired-pooling memory: the layout decides.
//! * port block allocation ([`super::blocks`]): a port from the host's
//!   own blocks on its paired address first, a new block (the inside
//!   port's first) only when probing plausibly found none and the host is
//!   below its cap; host cap, no free block and a fresh block's ports
//!   taken as failures, each only when plausible.

use super::Rule;
use nat_common::{
    Counter, EndpointKey, FirstSession, InsideEndpoint, Mapping,
    blocks::ALLOCATION_BLOCK,
    deterministic::{ALLOCATION_DETERMINISTIC, PORT_PROBES, port_probe},
};

use super::parse::ICMP;
use super::{Allocation, Ctx, NOW};

/// Whether public port `port` of `addr` has no `NAPT_IN` entry.
pub(super) fn free(ctx: &Ctx, addr: u32, port: u32, proto: u8) -> bool {
    !ctx.st.napt_in.contains_key(&EndpointKey {
        addr,
        port: (port as u16).to_be(),
        proto,
        _pad: 0,
    })
}

/// Fraction of ports in `lo..=hi` (with parity `parity` if given) that
/// are free on `addr`.
fn free_fraction(ctx: &Ctx, addr: u32, lo: u32, hi: u32, parity: Option<u32>, proto: u8) -> f64 {
    let counted = |p: u32| p >= lo && p <= hi && parity.is_none_or(|b| p & 1 == b);
    let n = (lo..=hi).filter(|&p| counted(p)).count();
    let used = ctx
        .st
        .napt_in
        .keys()
        .filter(|k| k.addr == addr && k.proto == proto && counted(u32::from(u16::from_be(k.port))))
        .count();
    if n == 0 {
        0.0
    } else {
        (n - used) as f64 / n as f64
    }
}

/// Under deterministic allocation, `inside`'s (network order) pool
/// address and port range: its number among the inside addresses (the
/// prefixes in ascending order), `hosts_per_addr` to a pool slot,
/// `ports_per_host` each from `port_min`. `Some(None)`: the layout does
/// not reach it.
fn deterministic_share(ctx: &Ctx, inside: u32) -> Option<Option<(u32, u32, u32)>> {
    let cfg = ctx.st.config;
    if cfg.allocation != ALLOCATION_DETERMINISTIC {
        return None;
    }
    let mut prefixes: Vec<(u32, u32)> = ctx
        .st
        .internal
        .iter()
        .map(|&(net, len)| (u32::from_be(net), len))
        .collect();
    prefixes.sort();
    let a = u32::from_be(inside);
    let mut first = 0u64;
    let mut index = None;
    for (net, len) in prefixes {
        let size = 1u64 << (32 - len);
        if u64::from(a.wrapping_sub(net)) < size && a >= net {
            index = Some(first + u64::from(a - net));
            break;
        }
        first += size;
    }
    let (hpa, pph) = (
        u64::from(cfg.det_hosts_per_addr),
        u64::from(cfg.det_ports_per_host),
    );
    let share = index.and_then(|i| {
        if hpa == 0 || pph == 0 {
            return None;
        }
        let slot = i / hpa;
        let lo = u64::from(cfg.port_min) + (i % hpa) * pph;
        let hi = lo + pph - 1;
        (slot < u64::from(cfg.pool_len) && hi <= 65535).then(|| {
            (
                *ctx.st
                    .pool
                    .get(slot as usize)
                    .expect("a pool slot below pool_len"),
                lo as u32,
                hi as u32,
            )
        })
    });
    Some(share)
}

/// Creates the mapping of inside endpoint `key`, holding `first` (the
/// session of the packet that makes it), or says why not.
pub fn allocate(ctx: &mut Ctx, key: &EndpointKey, first: FirstSession) -> Result<Mapping, Counter> {
    let cfg = ctx.st.config;
    // The cap's counter: an IPv6 host's is its prefix's (README "NAT64").
    let cap_key = if cfg.max_ports_per_host != 0 && super::nat64::is_stand_in(key.addr) {
        super::nat64::outbound::cap_key(ctx, key.addr).ok_or(Counter::Nat64DropHostsFull)?
    } else {
        key.addr
    };
    if cfg.allocation == ALLOCATION_BLOCK {
        return super::blocks::allocate(ctx, key, first);
    }
    let det = deterministic_share(ctx, key.addr);
    if det == Some(None) {
        ctx.note(Rule::DeterministicNoShare);
        if !matches!(ctx.oracle.allocation(key), Allocation::Failed) {
            ctx.violations.push(format!(
                "a mapping for {}, which the deterministic layout does not reach",
                crate::napt_maps::ip(key.addr)
            ));
        }
        return Err(Counter::DropPortsExhausted);
    }
    let det = det.flatten();
    if cfg.max_ports_per_host != 0 {
        let held = ctx.st.host_ports.get(&cap_key).copied().unwrap_or(0);
        if held >= u64::from(cfg.max_ports_per_host) {
            ctx.note(Rule::HostPortCap);
            return Err(Counter::DropHostPortCap);
        }
    }
    if let Some((addr, lo, hi)) = det {
        return deterministic(ctx, key, first, addr, (lo, hi));
    }
    let want = u32::from(u16::from_be(key.port));
    // The ports a mapping may have at all, and the class tried first.
    let (min, max) = (u32::from(cfg.port_min), u32::from(cfg.port_max));
    let (mut lo, mut hi) = if want < 1024 {
        (0, 1023)
    } else {
        (1024, 65535)
    };
    lo = lo.max(min);
    hi = hi.min(max);
    if lo > hi {
        (lo, hi) = (min, max);
    }
    let parity = (key.proto != ICMP).then_some(want & 1);
    let known = ctx.st.paired.get(&key.addr).copied();
    match ctx.oracle.allocation(key) {
        Allocation::Mapped { addr, port } => {
            let p = u32::from(u16::from_be(port));
            check_made(ctx, addr);
            if known.is_some_and(|k| k != addr) {
                ctx.violations.push(format!(
                    "paired pooling: this host had pool address {:?}, now {:?}",
                    crate::napt_maps::ip(known.unwrap_or(0)),
                    crate::napt_maps::ip(addr)
                ));
            }
            let keep = want >= min && want <= max && free(ctx, addr, want, key.proto);
            if keep && p != want {
                ctx.violations
                    .push(format!("port {want} was free but {p} was chosen"));
            } else if !keep {
                if p < min || p > max {
                    ctx.violations.push(format!("port {p} outside {min}-{max}"));
                } else if !free(ctx, addr, p, key.proto) {
                    ctx.violations.push(format!("port {p} already in use"));
                }
                let preserving = p >= lo && p <= hi && parity.is_none_or(|b| p & 1 == b);
                if !preserving && free_fraction(ctx, addr, lo, hi, parity, key.proto) >= 0.75 {
                    ctx.violations.push(format!(
                        "port {p} breaks parity/range ({lo}-{hi}, parity {parity:?}) though most such ports are free"
                    ));
                }
            }
            ctx.st.paired.insert(key.addr, addr);
            ctx.note(if p == want {
                Rule::PortKept
            } else {
                Rule::PortChanged
            });
            Ok(install(ctx, key, addr, port, first))
        }
        Allocation::TableFull => Err(table_full(ctx)),
        Allocation::Failed => {
            ctx.note(Rule::NoPublicPort);
            let candidates: Vec<u32> = match known {
                Some(a) => vec![a],
                None => ctx
                    .st
                    .pool
                    .iter()
                    .take(cfg.pool_len as usize)
                    .copied()
                    .collect(),
            };
            if ctx.st.mapping_tables_full()
                && want >= min
                && want <= max
                && candidates.iter().all(|&a| free(ctx, a, want, key.proto))
            {
                ctx.violations.push(format!(
                    "ports exhausted reported though the mapping tables are full and the inside port {want} is free (its reservation must fail for want of room)"
                ));
            }
            let plausible = candidates.iter().any(|&a| {
                let kept = want >= min && want <= max && free(ctx, a, want, key.proto);
                !kept && free_fraction(ctx, a, min, max, None, key.proto) < 0.75
            });
            if !plausible {
                ctx.violations.push(format!(
                    "no port allocated for {}:{want} though the inside port or most of {min}-{max} is free",
                    crate::napt_maps::ip(key.addr)
                ));
            }
            Err(Counter::DropPortsExhausted)
        }
    }
}

/// A new mapping under deterministic allocation, for a host whose share is
/// pool address `addr`, ports `lo..=hi`: no randomness to allow for — the
/// inside port if it lies in the range and is free, else the first free
/// port of the fixed sequence (`port_probe`); none free, no mapping. A
/// full table may refuse it only when the tables are full.
fn deterministic(
    ctx: &mut Ctx,
    key: &EndpointKey,
    first: FirstSession,
    addr: u32,
    (lo, hi): (u32, u32),
) -> Result<Mapping, Counter> {
    let want = u16::from_be(key.port);
    let kept = (lo..=hi).contains(&u32::from(want)).then_some(want);
    let sequence = (0..PORT_PROBES)
        .map(|i| port_probe(lo as u16, hi as u16, want, key.proto != ICMP, key.proto, i));
    let expected = kept
        .into_iter()
        .chain(sequence)
        .find(|&p| free(ctx, addr, u32::from(p), key.proto));
    match (ctx.oracle.allocation(key), expected) {
        (Allocation::Mapped { addr: a, port }, _) => {
            check_made(ctx, a);
            let p = u16::from_be(port);
            if a != addr || Some(p) != expected {
                ctx.violations.push(format!(
                    "deterministic allocation: expected {}:{expected:?} (range {lo}-{hi}, inside port {want}), got {}:{p}",
                    crate::napt_maps::ip(addr),
                    crate::napt_maps::ip(a),
                ));
            }
            ctx.note(Rule::DeterministicRange);
            ctx.note(if p == want {
                Rule::PortKept
            } else {
                Rule::DeterministicSequence
            });
            Ok(install(ctx, key, a, port, first))
        }
        (Allocation::TableFull, _) => Err(table_full(ctx)),
        (Allocation::Failed, None) => {
            ctx.note(Rule::NoPublicPort);
            Err(Counter::DropPortsExhausted)
        }
        (Allocation::Failed, Some(p)) => {
            ctx.violations.push(format!(
                "deterministic allocation refused {}:{want} though port {p} of its sequence is free",
                crate::napt_maps::ip(key.addr)
            ));
            Err(Counter::DropPortsExhausted)
        }
    }
}

/// What any new mapping on pool address `addr` must meet: room in the
/// tables, and `addr` in the pool.
pub(super) fn check_made(ctx: &mut Ctx, addr: u32) {
    if ctx.st.mapping_tables_full() {
        ctx.violations
            .push(format!("a mapping was made with {}", ctx.st.mapping_fill()));
    }
    if !ctx.st.in_pool(addr) {
        ctx.violations
            .push(format!("public address {addr:#x} is not a pool address"));
    }
}

/// Enters the new mapping of inside endpoint `key` at public endpoint
/// `addr`:`port` (network order), holding `first`: its `NAPT_IN` and
/// `NAPT_OUT` entries, the host's port count under a per-host cap, and
/// the counters of a mapping made with its first session.
pub(super) fn install(
    ctx: &mut Ctx,
    key: &EndpointKey,
    addr: u32,
    port: u16,
    first: FirstSession,
) -> Mapping {
    let inside = InsideEndpoint {
        addr: key.addr,
        port: key.port,
        flags: 0,
    };
    let public = Mapping {
        addr,
        port,
        flags: 0,
        created: NOW,
        last_seen: NOW,
        first,
    };
    let pkey = EndpointKey {
        addr,
        port,
        proto: key.proto,
        _pad: 0,
    };
    ctx.st.napt_in.insert(pkey, inside);
    ctx.st.napt_out.insert(*key, public);
    if ctx.st.config.max_ports_per_host != 0 {
        // (An IPv6 host's prefix has its stand-in by now: `allocate`.)
        let counter = super::nat64::counted_on(&ctx.st, key.addr);
        *ctx.st.host_ports.entry(counter).or_insert(0) += 1;
    }
    // The mapping comes with its first session.
    ctx.bump(Counter::NaptMappingsCreated);
    ctx.bump(Counter::NaptSessionsCreated);
    public
}

/// A new mapping refused for want of room: the table found full (noted),
/// and a violation unless one is.
pub(super) fn table_full(ctx: &mut Ctx) -> Counter {
    ctx.note(if ctx.st.napt_in.len() >= ctx.st.capacity.napt_in {
        Rule::MappingTableFullNaptIn
    } else {
        Rule::MappingTableFullNaptOut
    });
    if !ctx.st.mapping_tables_full() {
        ctx.violations.push(format!(
            "mapping table full reported with {}",
            ctx.st.mapping_fill()
        ));
    }
    Counter::DropMappingTableFull
}
