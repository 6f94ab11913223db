//! Port block allocation (`--allocation block`, see `nat_common::blocks`):
//! a new mapping takes a port from one of its host's blocks (the inside
//! port if its block is the host's and the port is free, else random
//! probes keeping parity), and only when none has a free port found by
//! probing does the host reserve a new block, on its paired pool address,
//! up to its cap.
//!
//! A reserved port is kept only if its block still belongs to the host
//! once the `NAPT_IN` entry is in: the agent releases a block by deleting
//! its `BLOCKS` entry and then looking for bindings in it, so a port taken
//! while it releases is either seen by the agent (which keeps the block)
//! or given back here.
use aya_ebpf::helpers::generated::bpf_get_prandom_u32;
use nat_common::{
    Counter, EndpointKey, InsideEndpoint, NatConfig,
    blocks::{BlockKey, BlockOwner, Blocks, HostBlocks, MAX_BLOCKS_PER_HOST},
};

use crate::{
    maps::{BLOCKS, HOST_BLOCKS, NAPT_IN},
    napt::alloc::{AllocError, Probes, Reserve, pool_addr, probe, refused, reserve, reserve_in},
    parse::ipv4::IPPROTO_ICMP,
};

const BPF_NOEXIST: u64 = 1;
const EEXIST: i64 = 17;
/// Port probes in the host's blocks (the first half keeping parity).
const PORT_PROBES: u32 = 16;
/// Block probes for a new block: random ones, then consecutive blocks
/// from a random start (a nearly full pool still yields its free blocks).
const BLOCK_PROBES_RANDOM: u32 = 16;
const BLOCK_PROBES: u32 = 64;

/// Picks and reserves the public endpoint of a new mapping of `key`
/// (`want`: its inside port, host order).
#[inline(always)]
pub fn pick(
    cfg: &NatConfig,
    key: &EndpointKey,
    want: u16,
    inside: &InsideEndpoint,
    now: u64,
) -> Result<(u32, u16), AllocError> {
    let public = pool_addr(cfg, key.addr).ok_or(refused(Counter::DropPortsExhausted, 0))?;
    let blocks = Blocks::of(cfg);
    let found = HOST_BLOCKS.get_ptr_mut(key.addr);
    // The host's list, if its blocks are on its pool address (a list on
    // another address is stale: a pool change moved the host).
    // SAFETY: the value lives in the map; a u32 read.
    let list = found.filter(|l| unsafe { (**l).addr } == public);
    let stale = found.is_some() && list.is_none();
    let mut held = 0;
    if let Some(l) = list {
        // SAFETY: as above.
        held = unsafe { (*l).count }.min(MAX_BLOCKS_PER_HOST);
        if let Some(port) = in_held(&blocks, l, held, public, key, want, inside)? {
            return Ok((public, port));
        }
    }
    if held >= cfg.max_blocks_per_host {
        return Err(AllocError {
            reason: Counter::DropHostPortCap,
            public,
            limit: cfg.max_blocks_per_host * cfg.block_size,
        });
    }
    let index = claim(&blocks, public, key.addr, want, now)
        .ok_or(refused(Counter::DropPortsExhausted, public))?;
    crate::counters::bump(Counter::NaptBlocksAllocated);
    remember(list, stale, key.addr, public, index);
    let (lo, hi) = blocks.range(index);
    let block = (lo as u32, hi as u32);
    let probes = Probes {
        preserving: PORT_PROBES / 2,
        total: PORT_PROBES,
    };
    match reserve_in(public, block, block, probes, want, key.proto, inside)? {
        Some(port) => Ok((public, port)),
        // Ports of a fresh block held by port forwards or older bindings:
        // the block stays the host's (the agent releases it if it stays
        // unused).
        None => Err(refused(Counter::DropPortsExhausted, public)),
    }
}

/// A port reserved in one of the `held` blocks of `list`, if probing finds
/// one: the inside port if its block is the host's, then random probes. A
/// reservation that finds `NAPT_IN` full ends it, as in dynamic allocation
/// (a new block would only meet the same full table).
#[inline(always)]
fn in_held(
    blocks: &Blocks,
    list: *mut HostBlocks,
    held: u32,
    public: u32,
    key: &EndpointKey,
    want: u16,
    inside: &InsideEndpoint,
) -> Result<Option<u16>, AllocError> {
    if held == 0 {
        return Ok(None);
    }
    let full = refused(Counter::DropMappingTableFull, public);
    if let Some(index) = blocks.index_of(want)
        // SAFETY: the value lives in the map; read only.
        && unsafe { (*list).holds(index) }
    {
        match take(public, want, key.proto, inside, index, key.addr) {
            Reserve::Done => return Ok(Some(want)),
            Reserve::Full => return Err(full),
            Reserve::Taken => {}
        }
    }
    let parity = key.proto != IPPROTO_ICMP;
    let mut i = 0;
    while i < PORT_PROBES {
        // SAFETY: helper without arguments.
        let r = unsafe { bpf_get_prandom_u32() };
        // Multiply-shift range reduction: the verifier follows its bounds
        // (it does not a remainder's) to the array index.
        let slot = (((r & 0xffff) * held) >> 16) as usize;
        if slot >= MAX_BLOCKS_PER_HOST as usize {
            return Ok(None);
        }
        // SAFETY: in bounds (checked above); a u16 read.
        let index = unsafe { (*list).index[slot] } as u32;
        if index < blocks.count() {
            let (lo, hi) = blocks.range(index);
            let keep = parity && i < PORT_PROBES / 2;
            let port = probe(lo as u32, hi as u32, keep.then_some(want));
            if port >= lo as u32 && port <= hi as u32 {
                match take(public, port as u16, key.proto, inside, index, key.addr) {
                    Reserve::Done => return Ok(Some(port as u16)),
                    Reserve::Full => return Err(full),
                    Reserve::Taken => {}
                }
            }
        }
        i += 1;
    }
    Ok(None)
}

/// Reserves `port` of block `index` for `host`, and keeps it only if the
/// block is still the host's (`Taken` if not).
#[inline(always)]
fn take(
    public: u32,
    port: u16,
    proto: u8,
    inside: &InsideEndpoint,
    index: u32,
    host: u32,
) -> Reserve {
    match reserve(public, port, proto, inside) {
        Reserve::Done => {}
        other => return other,
    }
    let block = BlockKey {
        addr: public,
        index,
    };
    // SAFETY: a u32 read of a value in the map.
    if unsafe { BLOCKS.get(&block) }.is_some_and(|o| o.host == host) {
        return Reserve::Done;
    }
    // Released meanwhile by the agent: give the port back.
    let _ = NAPT_IN.remove(&EndpointKey {
        addr: public,
        port: port.to_be(),
        proto,
        _pad: 0,
    });
    Reserve::Taken
}

/// Reserves a free block of `public` for `host`: the inside port's block
/// first (port preservation), then probes. `None`: no free block found.
#[inline(always)]
fn claim(blocks: &Blocks, public: u32, host: u32, want: u16, now: u64) -> Option<u32> {
    let count = blocks.count();
    if count == 0 {
        return None;
    }
    let owner = BlockOwner {
        host,
        _pad: 0,
        allocated: now,
    };
    let try_block = |index: u32| {
        let key = BlockKey {
            addr: public,
            index,
        };
        BLOCKS.insert(&key, &owner, BPF_NOEXIST).is_ok()
    };
    if let Some(index) = blocks.index_of(want)
        && try_block(index)
    {
        return Some(index);
    }
    // SAFETY: helper without arguments.
    let start = unsafe { bpf_get_prandom_u32() } % count;
    let mut i = 0;
    while i < BLOCK_PROBES {
        let index = if i < BLOCK_PROBES_RANDOM {
            // SAFETY: helper without arguments.
            (unsafe { bpf_get_prandom_u32() }) % count
        } else {
            (start + i - BLOCK_PROBES_RANDOM) % count
        };
        if try_block(index) {
            return Some(index);
        }
        i += 1;
    }
    None
}

/// Adds block `index` of `public` to `host`'s list (`list`: the host's
/// list on that address, if it has one; `stale`: it has one on another).
#[inline(always)]
fn remember(list: Option<*mut HostBlocks>, stale: bool, host: u32, public: u32, index: u32) {
    let list = match list {
        Some(l) => l,
        None => {
            let mut fresh = HostBlocks {
                addr: public,
                count: 1,
                index: [0; MAX_BLOCKS_PER_HOST as usize],
            };
            fresh.index[0] = index as u16;
            // Replaces a stale list (blocks on an old pool address: the
            // agent releases them once unused); a list another CPU has just
            // made for this address is appended to instead.
            let flags = if stale { 0 } else { BPF_NOEXIST };
            match HOST_BLOCKS.insert(&host, &fresh, flags) {
                Err(e) if e as i64 == -EEXIST => {}
                // Done, or the table is full: the block stays the host's
                // in BLOCKS, and the agent lists it again.
                _ => return,
            }
            match HOST_BLOCKS.get_ptr_mut(host) {
                Some(l) => l,
                None => return,
            }
        }
    };
    // SAFETY: the value lives in the map. Two CPUs appending for the same
    // host at once may overwrite each other's entry; BLOCKS keeps the
    // owner, and the agent restores the list (module comment).
    unsafe {
        // A block released from under the list and claimed again is in it
        // already.
        if (*list).holds(index) {
            return;
        }
        let n = (*list).count;
        if (n as usize) < (*list).index.len() {
            (*list).index[n as usize] = index as u16;
            (*list).count = n + 1;
        }
    }
}
