//! `NAPT_IN` entries that no mapping points to ("orphans"): an entry
//! (public endpoint → inside endpoint) is one when `NAPT_OUT` has no
//! mapping for that inside endpoint whose public endpoint is the entry's
//! key. Each holds a public port that no mapping uses and steers inbound
//! packets for it to an inside endpoint that never sent from it. Expiry
//! cannot find them (it walks `NAPT_OUT`); they are left by a process
//! killed between its two deletes (a flush, a `forward del`, an agent), or
//! by a race of such deletes.
//!
//! Every mapping has an orphan's shape for a moment: the data plane
//! reserves the public endpoint by inserting the `NAPT_IN` entry first and
//! adds the `NAPT_OUT` entry right after (nat-ebpf alloc.rs; `forward add`
//! does the same), and a mapping made after the sweep read `NAPT_OUT` is
//! missing from what it read. So an entry is removed only when it was an
//! orphan, naming the same inside endpoint, in the previous scan too (a
//! minute earlier), and `NAPT_OUT` is checked for it once more right
//! before the delete.
use std::{
    cell::{Cell, RefCell},
    io,
    os::fd::RawFd,
};

use nat_common::{EndpointKey, InsideEndpoint, Mapping};

use super::{NS, SWEEP_CHUNK, endpoint};
use crate::{
    agent::fasthash::{FastSet, Seeded},
    tables::batch,
};

/// How often a sweep also looks for orphans (data-plane time): reading
/// `NAPT_IN` whole and noting every mapping nearly doubles a sweep (~0.6 s
/// more at a million bindings), and orphans are rare, so a port an orphan
/// holds is freed within two minutes instead of one second.
pub const ORPHAN_SCAN_INTERVAL_NS: u64 = 60 * NS;

/// A `NAPT_IN` entry packed into one integer: its key (the public
/// endpoint) and the inside endpoint it names.
pub(super) fn binding(public: &EndpointKey, inside_addr: u32, inside_port: u16) -> u128 {
    let public = endpoint(public.addr, public.port, public.proto) as u128;
    public << 64 | (inside_addr as u128) << 16 | inside_port as u128
}

/// The orphan scans of one sweeper, and what the last one found.
pub(super) struct OrphanScan {
    /// When the last scan ran (data-plane clock, ns).
    last: Cell<Option<u64>>,
    /// The orphans the last scan found ([`binding`]s), for this one to
    /// confirm.
    suspects: RefCell<FastSet<u128>>,
}

impl OrphanScan {
    pub fn new() -> Self {
        OrphanScan {
            last: Cell::new(None),
            suspects: RefCell::new(FastSet::with_hasher(Seeded::default())),
        }
    }

    /// Whether a sweep at `now` scans: the first one, then one a minute.
    /// Whether a sweep at `now` scans. The first sweep of a sweeper (an
    /// agent just started) only starts the clock: it walks the mappings in
    /// the kernel where it can, and an orphan needs two scans a minute
    /// apart to go anyway.
    pub fn due(&self, now: u64) -> bool {
        match self.last.get() {
            None => {
                self.last.set(Some(now));
                false
            }
            Some(last) => now.saturating_sub(last) >= ORPHAN_SCAN_INTERVAL_NS,
        }
    }

    /// Walks `NAPT_IN` (`in_fd`) and removes the entries that are orphans
    /// now and were in the previous scan; remembers the new ones. `bound`
    /// holds the [`binding`] of every mapping the sweep found in `NAPT_OUT`
    /// (`out_fd`) just before. Returns how many entries it removed.
    pub fn scan(
        &self,
        in_fd: RawFd,
        out_fd: RawFd,
        bound: &FastSet<u128>,
        now: u64,
    ) -> io::Result<usize> {
        self.last.set(Some(now));
        let before = self.suspects.take();
        let mut suspects = FastSet::with_hasher(Seeded::default());
        let mut confirmed: Vec<(EndpointKey, InsideEndpoint)> = Vec::new();
        batch::lookup_chunks::<EndpointKey, InsideEndpoint>(in_fd, SWEEP_CHUNK, |keys, values| {
            for (k, inside) in keys.iter().zip(values) {
                let b = binding(k, inside.addr, inside.port);
                if bound.contains(&b) {
                    continue;
                }
                if before.contains(&b) {
                    confirmed.push((*k, *inside));
                } else {
                    suspects.insert(b);
                }
            }
            Ok(())
        })?;
        drop(before);
        // A mapping for the entry may have been made since the sweep read
        // NAPT_OUT (with a public endpoint that was an orphan's a minute
        // ago: unlikely, but then the entry is its reservation).
        let mut orphans = Vec::with_capacity(confirmed.len());
        for (k, inside) in confirmed {
            let mapping: Option<Mapping> = batch::lookup(out_fd, &inside.key(k.proto))?;
            if mapping.is_none_or(|m| (m.addr, m.port) != (k.addr, k.port)) {
                orphans.push((k, inside));
            }
        }
        // Only if the entry still names the inside endpoint read: the port
        // may have been released and taken by a new mapping meanwhile.
        let removed = batch::delete_unchanged(in_fd, &orphans, |was, now| {
            (now.addr, now.port) == (was.addr, was.port)
        })?;
        *self.suspects.borrow_mut() = suspects;
        Ok(removed.len())
    }
}
