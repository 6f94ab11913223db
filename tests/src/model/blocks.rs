//! A new mapping's public endpoint under port block allocation
//! (`--allocation block`, `nat_common::blocks`). As for the dynamic
//! allocator, the data plane's choice is read back through the
//! [`super::Oracle`] (the mapping, and the block it claimed as `BLOCKS`
//! has it after the run) and checked against the rules:
//!
//! * paired pooling: the host's blocks and ports are on its pool address;
//! * its blocks are those its `HOST_BLOCKS` list names (at most 16), if
//!   the list is on that address: a list on another one is stale, as if
//!   there were none;
//! * a port from them first: the inside port if its block is listed,
//!   still the host's in `BLOCKS` and the port free; else a free port of
//!   a listed block the host still owns, keeping parity (not for ICMP)
//!   unless most same-parity ports there are taken (8 probes keep it);
//! * a new block only when probing plausibly found none: the inside port
//!   not keepable, and 16 probes missing every port they could take less
//!   unlikely than 1 in 10^9. A host listing `--max-blocks-per-host`
//!   blocks then gets no port ("host cap"); another claims a block free in
//!   `BLOCKS` on its pool address (the inside port's block first, if it
//!   is a whole one and free) and takes a port there the same way;
//! * no block claimed is plausible only when none was free (past 48
//!   blocks the claim's probes may miss a few free ones: when most are
//!   taken), no port in the fresh block only when the inside port is not
//!   in it or taken and most of its ports are taken (by forwards); the
//!   block stays claimed either way;
//! * a claimed block: `BLOCKS` names the host (stamped now), and its list
//!   gains the block at its end (a new list replaces none or a stale one;
//!   a list of 16 stays as it is);
//! * full tables, as under dynamic allocation: a reservation meeting a
//!   full `NAPT_IN`, or the `NAPT_OUT` insert after one, drops the packet
//!   ("mapping table full", no further probing): in the host's blocks the
//!   first free port probing meets ends it, whoever owns its block.

use nat_common::{
    Counter, EndpointKey, FirstSession, Mapping,
    blocks::{BlockKey, BlockOwner, HostBlocks, MAX_BLOCKS_PER_HOST},
};

use super::alloc::{check_made, free, install, table_full};
use super::parse::ICMP;
use super::{Allocation, Ctx, NOW, Rule};
use crate::napt_maps::ip;

/// Port probes in the host's blocks, and again in a fresh one; the first
/// half keep the inside port's parity.
const PORT_PROBES: i32 = 16;
/// Probes missing every port they could take with less chance than this
/// are a defect, not bad luck.
const IMPLAUSIBLE: f64 = 1e-9;
/// A claim tries this many blocks in a row (after random ones): on an
/// address of no more blocks it looks at every one.
const CLAIM_SWEEP: u32 = 48;

/// The configured port range cut into blocks of `size` ports from its
/// first port; a remainder shorter than a block is not used.
#[derive(Clone, Copy, Debug)]
struct Layout {
    min: u32,
    size: u32,
    count: u32,
}

impl Layout {
    fn of(ctx: &Ctx) -> Layout {
        let c = ctx.st.config;
        let (min, max) = (u32::from(c.port_min), u32::from(c.port_max));
        let count = if c.block_size == 0 || max < min {
            0
        } else {
            (max - min + 1) / c.block_size
        };
        Layout {
            min,
            size: c.block_size,
            count,
        }
    }

    /// The whole block holding `port`, if one does.
    fn index_of(&self, port: u32) -> Option<u32> {
        if self.size == 0 || port < self.min {
            return None;
        }
        let i = (port - self.min) / self.size;
        (i < self.count).then_some(i)
    }

    fn ports(&self, index: u32) -> std::ops::RangeInclusive<u32> {
        let lo = self.min + index * self.size;
        lo..=lo + self.size - 1
    }
}

/// One new mapping's search: inside host `host`'s port `want` of
/// protocol `proto`, on pool address `public`.
struct Search {
    layout: Layout,
    public: u32,
    host: u32,
    want: u32,
    proto: u8,
    /// The parity probes keep (none for ICMP).
    parity: Option<u32>,
}

/// Whether `BLOCKS` gives block `index` of `public` to `host`.
fn owned(ctx: &Ctx, public: u32, index: u32, host: u32) -> bool {
    ctx.st
        .blocks
        .get(&BlockKey {
            addr: public,
            index,
        })
        .is_some_and(|o| o.host == host)
}

/// Whether reserving `port` of block `index` ends the search: the port is
/// free, and the block is the host's (`claimed`: just claimed) or the
/// reservation meets a full `NAPT_IN`. A port of a block the host no
/// longer owns is given back, and probing goes on.
fn ends(ctx: &Ctx, s: &Search, index: u32, port: u32, claimed: bool) -> bool {
    free(ctx, s.public, port, s.proto)
        && (claimed
            || owned(ctx, s.public, index, s.host)
            || ctx.st.napt_in.len() >= ctx.st.capacity.napt_in)
}

/// Chance that one probe (a random slot of `blocks`, a random port of its
/// block, of parity `parity` if given) ends the search.
fn chance(ctx: &Ctx, s: &Search, blocks: &[u32], parity: Option<u32>, claimed: bool) -> f64 {
    if blocks.is_empty() {
        return 0.0;
    }
    let sum: f64 = blocks
        .iter()
        .filter(|&&b| b < s.layout.count)
        .map(|&b| {
            let ports: Vec<u32> = s
                .layout
                .ports(b)
                .filter(|p| parity.is_none_or(|w| p & 1 == w))
                .collect();
            let ending = ports
                .iter()
                .filter(|&&p| ends(ctx, s, b, p, claimed))
                .count();
            if ports.is_empty() {
                0.0
            } else {
                ending as f64 / ports.len() as f64
            }
        })
        .sum();
    sum / blocks.len() as f64
}

/// Chance that every probe of `blocks` misses.
fn all_miss(ctx: &Ctx, s: &Search, blocks: &[u32], claimed: bool) -> f64 {
    if blocks.is_empty() {
        return 1.0;
    }
    let any = 1.0 - chance(ctx, s, blocks, None, claimed);
    match s.parity {
        Some(w) => {
            (1.0 - chance(ctx, s, blocks, Some(w), claimed)).powi(PORT_PROBES / 2)
                * any.powi(PORT_PROBES / 2)
        }
        None => any.powi(PORT_PROBES),
    }
}

/// A violation unless port `p` keeps the inside port's parity or the
/// parity-keeping probes of `blocks` may all have missed.
fn check_parity(ctx: &mut Ctx, s: &Search, blocks: &[u32], claimed: bool, p: u32) {
    if let Some(w) = s.parity
        && p & 1 != w
        && (1.0 - chance(ctx, s, blocks, Some(w), claimed)).powi(PORT_PROBES / 2) < IMPLAUSIBLE
    {
        ctx.violations.push(format!(
            "port {p} breaks parity though most ports of parity {w} in blocks {blocks:?} are free"
        ));
    }
}

/// Whether claiming a block of `public` may find none: none is free, or
/// (past [`CLAIM_SWEEP`] blocks) most are taken.
fn claim_may_fail(ctx: &Ctx, layout: Layout, public: u32) -> bool {
    let taken = ctx
        .st
        .blocks
        .keys()
        .filter(|k| k.addr == public && k.index < layout.count)
        .count() as u32;
    let free = layout.count - taken.min(layout.count);
    free == 0 || (layout.count > CLAIM_SWEEP && f64::from(free) < 0.75 * f64::from(layout.count))
}

/// Creates the mapping of inside endpoint `key` under block allocation,
/// or says why not.
pub fn allocate(ctx: &mut Ctx, key: &EndpointKey, first: FirstSession) -> Result<Mapping, Counter> {
    let layout = Layout::of(ctx);
    let host = key.addr;
    let outcome = ctx.oracle.allocation(key);
    let claimed = ctx.oracle.claimed_block(host);
    let list = ctx.st.host_blocks.get(&host).copied();
    let known = ctx.st.paired.get(&host).copied();
    // The host's pool address: where the allocator mapped it or claimed a
    // block, else the one it had (a host that never had one holds no list
    // but on the address it claimed a block of).
    let public = match (outcome, claimed) {
        (Allocation::Mapped { addr, .. }, _) => Some(addr),
        (_, Some(b)) => Some(b.addr),
        _ => known.or(list.map(|l| l.addr)),
    };
    let Some(public) = public else {
        return no_address(ctx, layout, outcome);
    };
    if let Some(k) = known
        && k != public
    {
        ctx.violations.push(format!(
            "paired pooling: this host had pool address {:?}, now {:?}",
            ip(k),
            ip(public)
        ));
    }
    if let Some(b) = claimed
        && b.addr != public
    {
        ctx.violations.push(format!(
            "block {} claimed on {:?}, the mapping made on {:?}",
            b.index,
            ip(b.addr),
            ip(public)
        ));
    }
    let held: Vec<u32> = match list {
        Some(l) if l.addr == public => {
            let n = (l.count as usize).min(l.index.len());
            l.index[..n].iter().map(|&i| u32::from(i)).collect()
        }
        Some(_) => {
            ctx.note(Rule::BlockStaleList);
            Vec::new()
        }
        None => Vec::new(),
    };
    if held
        .iter()
        .any(|&b| b < layout.count && !owned(ctx, public, b, host))
    {
        ctx.note(Rule::BlockListedNotOwned);
    }
    let want = u32::from(u16::from_be(key.port));
    let s = Search {
        layout,
        public,
        host,
        want,
        proto: key.proto,
        parity: (key.proto != ICMP).then_some(want & 1),
    };
    // The inside port if its block is listed, then probes.
    let want_held = layout
        .index_of(want)
        .is_some_and(|b| held.contains(&b) && ends(ctx, &s, b, want, false));
    let none_held = !want_held && all_miss(ctx, &s, &held, false) >= IMPLAUSIBLE;
    match claimed {
        None => from_held(ctx, &s, &held, want_held, none_held, outcome, key, first),
        Some(block) => {
            claim(ctx, &s, &held, none_held, block);
            in_fresh(ctx, &s, block.index, outcome, key, first)
        }
    }
}

/// No pool address known and no block claimed: the host held no list, so
/// it tried to claim a block and found none free on its address (any of
/// the pool's, as far as the model knows).
fn no_address(ctx: &mut Ctx, layout: Layout, outcome: Allocation) -> Result<Mapping, Counter> {
    if outcome == Allocation::TableFull {
        ctx.violations.push(
            "mapping table full reported, but the host held no block and claimed none".into(),
        );
        return Err(table_full(ctx));
    }
    if ctx.st.config.max_blocks_per_host == 0 {
        ctx.note(Rule::BlockHostCap);
        return Err(Counter::DropHostPortCap);
    }
    ctx.note(Rule::BlockNone);
    let pool: Vec<u32> = ctx
        .st
        .pool
        .iter()
        .take(ctx.st.config.pool_len as usize)
        .copied()
        .collect();
    if !pool.iter().any(|&a| claim_may_fail(ctx, layout, a)) {
        ctx.violations
            .push("no block claimed, though every pool address has free blocks".into());
    }
    Err(Counter::DropPortsExhausted)
}

/// No block claimed: a port from the host's blocks `held`, or none.
#[allow(clippy::too_many_arguments)]
fn from_held(
    ctx: &mut Ctx,
    s: &Search,
    held: &[u32],
    want_held: bool,
    none_held: bool,
    outcome: Allocation,
    key: &EndpointKey,
    first: FirstSession,
) -> Result<Mapping, Counter> {
    match outcome {
        Allocation::Mapped { addr, port } => {
            ctx.note(Rule::BlockHeld);
            check_made(ctx, addr);
            let p = u32::from(u16::from_be(port));
            match s.layout.index_of(p).filter(|b| held.contains(b)) {
                None => ctx.violations.push(format!(
                    "port {p} lies in none of the host's blocks {held:?}"
                )),
                Some(b) if !owned(ctx, s.public, b, s.host) => ctx
                    .violations
                    .push(format!("port {p}: its block {b} is not the host's")),
                Some(_) if !free(ctx, s.public, p, s.proto) => {
                    ctx.violations.push(format!("port {p} already in use"))
                }
                Some(_) => {}
            }
            if want_held && p != s.want {
                ctx.violations.push(format!(
                    "port {} was free in the host's block but {p} was chosen",
                    s.want
                ));
            } else if !want_held {
                check_parity(ctx, s, held, false, p);
            }
            Ok(made(ctx, s, key, addr, port, first))
        }
        Allocation::TableFull => {
            // A reservation in the host's blocks met it (or NAPT_OUT did
            // after one).
            ctx.note(Rule::BlockHeldTableFull);
            if !want_held && chance(ctx, s, held, None, false) == 0.0 {
                ctx.violations.push(format!(
                    "mapping table full reported, but no port of the host's blocks {held:?} could be reserved and no block was claimed"
                ));
            }
            Err(table_full(ctx))
        }
        Allocation::Failed => {
            if !none_held {
                ctx.violations.push(format!(
                    "no port for {:?}:{}, though {} in the host's blocks {held:?}",
                    ip(s.host),
                    s.want,
                    if want_held {
                        "the inside port was free"
                    } else {
                        "most ports were free"
                    }
                ));
            }
            if held.len() as u32 >= ctx.st.config.max_blocks_per_host {
                ctx.note(Rule::BlockHostCap);
                return Err(Counter::DropHostPortCap);
            }
            ctx.note(Rule::BlockNone);
            if !claim_may_fail(ctx, s.layout, s.public) {
                ctx.violations.push(format!(
                    "no block claimed on {:?} though blocks are free",
                    ip(s.public)
                ));
            }
            Err(Counter::DropPortsExhausted)
        }
    }
}

/// Checks the claim of `block` (justified, under the cap, free before,
/// the inside port's first) and enters it: `BLOCKS`, the counter, the
/// host's list.
fn claim(ctx: &mut Ctx, s: &Search, held: &[u32], none_held: bool, block: BlockKey) {
    ctx.note(Rule::BlockClaimed);
    let max = ctx.st.config.max_blocks_per_host;
    if !none_held {
        ctx.violations.push(format!(
            "block {} claimed though the host's blocks {held:?} had the inside port or most ports free",
            block.index
        ));
    }
    if held.len() as u32 >= max {
        ctx.violations.push(format!(
            "block {} claimed by a host listing {} blocks, the cap {max}",
            block.index,
            held.len()
        ));
    }
    if block.index >= s.layout.count {
        ctx.violations.push(format!(
            "block {} claimed of {} blocks",
            block.index, s.layout.count
        ));
    }
    if let Some(o) = ctx.st.blocks.get(&block) {
        ctx.violations.push(format!(
            "block {} claimed, though {:?} held it",
            block.index,
            ip(o.host)
        ));
    }
    if let Some(w) = s.layout.index_of(s.want)
        && w != block.index
        && !ctx.st.blocks.contains_key(&BlockKey {
            addr: s.public,
            index: w,
        })
    {
        ctx.violations.push(format!(
            "block {} claimed, though the inside port's block {w} was free",
            block.index
        ));
    }
    ctx.st.blocks.insert(
        block,
        BlockOwner {
            host: s.host,
            _pad: 0,
            allocated: NOW,
        },
    );
    ctx.bump(Counter::NaptBlocksAllocated);
    match ctx
        .st
        .host_blocks
        .get_mut(&s.host)
        .filter(|l| l.addr == s.public)
    {
        Some(l) => {
            let n = l.count as usize;
            // A listed block released from under the list and claimed
            // again is not listed twice.
            if n < MAX_BLOCKS_PER_HOST as usize && !l.holds(block.index) {
                l.index[n] = block.index as u16;
                l.count += 1;
            }
        }
        None => {
            let mut l = HostBlocks {
                addr: s.public,
                count: 1,
                ..HostBlocks::default()
            };
            l.index[0] = block.index as u16;
            ctx.st.host_blocks.insert(s.host, l);
        }
    }
    ctx.st.paired.insert(s.host, s.public);
}

/// A port of the block just claimed (`index`), or none.
fn in_fresh(
    ctx: &mut Ctx,
    s: &Search,
    index: u32,
    outcome: Allocation,
    key: &EndpointKey,
    first: FirstSession,
) -> Result<Mapping, Counter> {
    let ports = s.layout.ports(index);
    let (lo, hi) = (*ports.start(), *ports.end());
    let want_fresh = ports.contains(&s.want) && free(ctx, s.public, s.want, s.proto);
    let fresh = [index];
    match outcome {
        Allocation::Mapped { addr, port } => {
            check_made(ctx, addr);
            let p = u32::from(u16::from_be(port));
            if !ports.contains(&p) {
                ctx.violations
                    .push(format!("port {p} outside the claimed block {lo}-{hi}"));
            } else if !free(ctx, s.public, p, s.proto) {
                ctx.violations.push(format!("port {p} already in use"));
            }
            if want_fresh && p != s.want {
                ctx.violations.push(format!(
                    "port {} was free in the claimed block but {p} was chosen",
                    s.want
                ));
            } else if !want_fresh {
                check_parity(ctx, s, &fresh, true, p);
            }
            Ok(made(ctx, s, key, addr, port, first))
        }
        Allocation::TableFull => {
            if !want_fresh && chance(ctx, s, &fresh, None, true) == 0.0 {
                ctx.violations.push(format!(
                    "mapping table full reported, but every port of the claimed block {lo}-{hi} was taken"
                ));
            }
            Err(table_full(ctx))
        }
        Allocation::Failed => {
            ctx.note(Rule::BlockFreshTaken);
            if want_fresh || all_miss(ctx, s, &fresh, true) < IMPLAUSIBLE {
                ctx.violations.push(format!(
                    "no port in the claimed block {lo}-{hi}, though {} free",
                    if want_fresh {
                        "the inside port was"
                    } else {
                        "most of its ports were"
                    }
                ));
            }
            Err(Counter::DropPortsExhausted)
        }
    }
}

/// A mapping made at `addr`:`port`: noted as the inside port kept or not,
/// and entered.
fn made(
    ctx: &mut Ctx,
    s: &Search,
    key: &EndpointKey,
    addr: u32,
    port: u16,
    first: FirstSession,
) -> Mapping {
    ctx.note(if u32::from(u16::from_be(port)) == s.want {
        Rule::PortKept
    } else {
        Rule::PortChanged
    });
    ctx.st.paired.insert(s.host, addr);
    install(ctx, key, addr, port, first)
}
