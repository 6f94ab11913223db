//! The agent's side of port block allocation (`nat_common::blocks`): after
//! every expiry sweep it
//! * notes the blocks the data plane reserved since the last sweep (the
//!   "allocated" events of the log, stamped with the reservation's time);
//! * releases a block no binding has used for the hold-down: its
//!   `HOST_BLOCKS` entry first (no new binding looks there), then its
//!   `BLOCKS` entry, then a look at every port of the block in `NAPT_IN`
//!   — a binding made meanwhile keeps the block (it is given back to its
//!   owner), and one made after the `BLOCKS` delete is undone by the data
//!   plane itself;
//! * puts back into a host's list a block `BLOCKS` says it owns but the
//!   list lost (two CPUs appended at once), and drops from the lists the
//!   blocks they no longer own;
//! * notes blocks that vanished without it (a flush): "released", reason
//!   "removed".
//!
//! Which blocks are in use comes from the sweep's listing of the mappings
//! (the sweep walks in user space under block allocation).
use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use nat_common::{
    EndpointKey, InsideEndpoint, Ipv4Be, MAPPING_FORWARD, Mapping, NatConfig,
    blocks::{BlockKey, BlockOwner, Blocks, HostBlocks, MAX_BLOCKS_PER_HOST},
};

use crate::{
    agent::translog::LISTING_SLACK,
    tables::{Table, Tables, batch},
};

const NS: u64 = 1_000_000_000;
/// Protocols whose ports a block holds.
const PROTOS: [u8; 3] = [6, 17, 1];
/// Blocks released per sweep at most (each costs a lookup per port and
/// protocol): the rest wait for the next sweep.
const RELEASES_PER_SWEEP: usize = 256;

/// Why a block went back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// No binding used it for the hold-down.
    Unused,
    /// It vanished from the table without the agent (a flush).
    Removed,
}

impl Released {
    pub fn name(self) -> &'static str {
        match self {
            Released::Unused => "unused",
            Released::Removed => "removed",
        }
    }
}

/// One block event: `allocated` (with the reservation's data-plane time)
/// or released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockEvent {
    pub key: BlockKey,
    pub owner: BlockOwner,
    /// First and last port (host order).
    pub ports: (u16, u16),
    /// `None`: allocated.
    pub released: Option<Released>,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct BlockReport {
    pub events: Vec<BlockEvent>,
    /// Blocks held after it.
    pub held: usize,
    /// Blocks given back to their owner because a binding was made in
    /// them while they were being released.
    pub kept: usize,
    /// Lists repaired (blocks put back or dropped).
    pub repaired: usize,
}

pub struct BlockKeeper {
    blocks: Table<BlockKey, BlockOwner>,
    host_blocks: Table<Ipv4Be, HostBlocks>,
    napt_in: Table<EndpointKey, InsideEndpoint>,
    /// The blocks held at the last pass.
    known: HashMap<BlockKey, BlockOwner>,
    /// Blocks no binding used, since when (data-plane ns).
    unused_since: HashMap<BlockKey, u64>,
}

impl BlockKeeper {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let tables = Tables::at(dir);
        let blocks = tables.blocks()?;
        // Blocks held before this agent started (a restart) were logged by
        // the one before.
        let known = blocks.lookup_all()?.into_iter().collect();
        Ok(BlockKeeper {
            blocks,
            host_blocks: tables.host_blocks()?,
            napt_in: tables.napt_in()?,
            known,
            unused_since: HashMap::new(),
        })
    }

    /// One pass after a sweep that began listing the mappings at
    /// `listed_from` (data-plane ns) and left `remaining`; `listed`: whether
    /// it listed them (else every block's ports are looked up instead).
    pub fn after_sweep(
        &mut self,
        cfg: &NatConfig,
        listed_from: u64,
        remaining: &[(EndpointKey, Mapping)],
        listed: bool,
    ) -> anyhow::Result<BlockReport> {
        let mut report = BlockReport::default();
        let owned: HashMap<BlockKey, BlockOwner> = self.blocks.lookup_all()?.into_iter().collect();
        if owned.is_empty() && self.known.is_empty() {
            return Ok(report);
        }
        let layout = Blocks::of(cfg);
        // Blocks a listed binding uses.
        let used: HashSet<BlockKey> = remaining
            .iter()
            .filter(|(_, m)| m.flags & MAPPING_FORWARD == 0)
            .filter_map(|(_, m)| {
                let index = layout.index_of(u16::from_be(m.port))?;
                Some(BlockKey {
                    addr: m.addr,
                    index,
                })
            })
            .collect();

        // New and vanished blocks.
        for (key, owner) in &self.known {
            if owned.get(key) != Some(owner) {
                report
                    .events
                    .push(event(&layout, key, owner, Some(Released::Removed)));
            }
        }
        for (key, owner) in &owned {
            if self.known.get(key) != Some(owner) {
                report.events.push(event(&layout, key, owner, None));
            }
        }
        self.known = owned.clone();
        self.unused_since.retain(|k, _| owned.contains_key(k));

        // Release what stayed unused for the hold-down.
        let hold = u64::from(cfg.block_hold_down) * NS;
        let mut due = Vec::new();
        for (key, owner) in &owned {
            // Made while the sweep listed: its bindings may be unlisted.
            let young = owner.allocated.saturating_add(LISTING_SLACK) >= listed_from;
            if (listed && used.contains(key)) || young {
                self.unused_since.remove(key);
                continue;
            }
            let since = *self.unused_since.entry(*key).or_insert(listed_from);
            if listed_from.saturating_sub(since) >= hold && due.len() < RELEASES_PER_SWEEP {
                due.push((*key, *owner));
            }
        }
        let mut lists = self.lists()?;
        for (key, owner) in due {
            if self.release(&layout, &key, &owner, &mut lists)? {
                self.known.remove(&key);
                self.unused_since.remove(&key);
                report
                    .events
                    .push(event(&layout, &key, &owner, Some(Released::Unused)));
            } else {
                report.kept += 1;
                self.unused_since.remove(&key);
            }
        }
        report.repaired = self.repair_lists(&mut lists)?;
        report.held = self.known.len();
        Ok(report)
    }

    /// Every host's list.
    fn lists(&self) -> anyhow::Result<HashMap<u32, HostBlocks>> {
        Ok(self.host_blocks.lookup_all()?.into_iter().collect())
    }

    /// Releases `key` (owned by `owner`); false if a binding turned up in
    /// it, and it was given back.
    fn release(
        &self,
        layout: &Blocks,
        key: &BlockKey,
        owner: &BlockOwner,
        lists: &mut HashMap<u32, HostBlocks>,
    ) -> anyhow::Result<bool> {
        let hosts_fd = self.host_blocks.fd();
        // The list as it is now (the data plane may have appended to it).
        let mut edit_list = |edit: &dyn Fn(&mut HostBlocks) -> bool| -> anyhow::Result<()> {
            if let Some(mut list) = batch::lookup::<u32, HostBlocks>(hosts_fd, &owner.host)?
                && list.addr == key.addr
                && edit(&mut list)
            {
                write_list(hosts_fd, owner.host, &list)?;
                lists.insert(owner.host, list);
            }
            Ok(())
        };
        edit_list(&|l| {
            let held = l.holds(key.index);
            drop_index(l, key.index);
            held
        })?;
        let blocks_fd = self.blocks.fd();
        let deleted = batch::delete_unchanged(blocks_fd, &[(*key, *owner)], |was, now| was == now)?;
        if deleted.is_empty() || !self.bound_in(layout, key)? {
            // Released (or gone already: a flush).
            return Ok(true);
        }
        // A binding was made in it meanwhile: the block stays its owner's.
        batch::insert_new(blocks_fd, key, owner)?;
        edit_list(&|l| add_index(l, key.index))?;
        Ok(false)
    }

    /// Whether any port of block `key` holds a binding (of any protocol).
    fn bound_in(&self, layout: &Blocks, key: &BlockKey) -> anyhow::Result<bool> {
        let (lo, hi) = layout.range(key.index);
        let fd = self.napt_in.fd();
        for port in lo..=hi {
            for proto in PROTOS {
                let public = EndpointKey {
                    addr: key.addr,
                    port: port.to_be(),
                    proto,
                    _pad: 0,
                };
                if batch::lookup::<EndpointKey, InsideEndpoint>(fd, &public)?.is_some() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Makes the lists agree with `BLOCKS` (read afresh): a host's list
    /// names exactly the blocks it owns on the list's address, as far as
    /// they fit. Returns the lists changed.
    fn repair_lists(&self, lists: &mut HashMap<u32, HostBlocks>) -> anyhow::Result<usize> {
        let owned = self.blocks.lookup_all()?;
        let mut by_host: HashMap<u32, Vec<BlockKey>> = HashMap::new();
        for (key, owner) in &owned {
            by_host.entry(owner.host).or_default().push(*key);
        }
        let fd = self.host_blocks.fd();
        let mut changed = 0;
        for (host, list) in lists.iter_mut() {
            let mine: Vec<u32> = by_host
                .get(host)
                .into_iter()
                .flatten()
                .filter(|k| k.addr == list.addr)
                .map(|k| k.index)
                .collect();
            let n = (list.count as usize).min(list.index.len());
            let listed: Vec<u32> = list.index[..n].iter().map(|&i| u32::from(i)).collect();
            if listed.len() == mine.len() && listed.iter().all(|i| mine.contains(i)) {
                continue;
            }
            // Re-read right before writing: the data plane may have added
            // a block since the listing (then the next pass looks again).
            let Some(now) = batch::lookup::<u32, HostBlocks>(fd, host)? else {
                continue;
            };
            if now != *list {
                continue;
            }
            let mut fixed = HostBlocks {
                addr: list.addr,
                ..HostBlocks::default()
            };
            for i in mine.iter().take(MAX_BLOCKS_PER_HOST as usize) {
                add_index(&mut fixed, *i);
            }
            write_list(fd, *host, &fixed)?;
            *list = fixed;
            changed += 1;
        }
        Ok(changed)
    }
}

fn event(
    layout: &Blocks,
    key: &BlockKey,
    owner: &BlockOwner,
    released: Option<Released>,
) -> BlockEvent {
    BlockEvent {
        key: *key,
        owner: *owner,
        ports: layout.range(key.index),
        released,
    }
}

/// Removes `index` from `list`, keeping the rest in order.
fn drop_index(list: &mut HostBlocks, index: u32) {
    let n = (list.count as usize).min(list.index.len());
    let kept: Vec<u16> = list.index[..n]
        .iter()
        .copied()
        .filter(|&i| u32::from(i) != index)
        .collect();
    list.index = [0; MAX_BLOCKS_PER_HOST as usize];
    list.index[..kept.len()].copy_from_slice(&kept);
    list.count = kept.len() as u32;
}

/// Appends `index` to `list` if it is not there and fits; whether it did.
fn add_index(list: &mut HostBlocks, index: u32) -> bool {
    let n = list.count as usize;
    if list.holds(index) || n >= list.index.len() {
        return false;
    }
    list.index[n] = index as u16;
    list.count += 1;
    true
}

/// Writes `host`'s list, or deletes it when it is empty.
fn write_list(fd: std::os::fd::RawFd, host: u32, list: &HostBlocks) -> anyhow::Result<()> {
    if list.count == 0 {
        batch::delete(fd, &[host])?;
    } else {
        batch::update(fd, &host, list)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_lose_and_gain_blocks_in_order() {
        let mut l = HostBlocks {
            addr: 1,
            ..HostBlocks::default()
        };
        assert!(add_index(&mut l, 5) && add_index(&mut l, 9) && add_index(&mut l, 2));
        assert!(!add_index(&mut l, 9), "already there");
        drop_index(&mut l, 9);
        assert_eq!((l.count, &l.index[..3]), (2, &[5u16, 2, 0][..]));
        for i in 10..30 {
            add_index(&mut l, i);
        }
        assert_eq!(
            l.count, MAX_BLOCKS_PER_HOST,
            "a list holds at most its array"
        );
    }
}
