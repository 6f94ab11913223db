//! NAT64 stand-ins no binding uses any more. The data plane gives each new
//! IPv6 inside host a stand-in address (`NAT64_IDS`, `NAT64_HOSTS`: see
//! `nat_common::nat64`) and never takes it back; the sweep frees the
//! stand-ins of hosts without a mapping, so the table's 65 536 go round.
//! Checked with the orphan scan (once a minute), which has every mapping
//! read out. A stand-in is freed when
//! * no mapping in `NAPT_OUT` has it as its inside address, at this scan
//!   and at the one before (a minute earlier): a mapping made after the
//!   sweep read `NAPT_OUT` is missing from what it read;
//! * it is not a static NAT64 entry's (those are in `STATIC_OUT`, and go
//!   when reconcile removes the entry);
//! * the data plane gave it out more than a minute ago (`created`, its
//!   clock): the host's first mapping may be on its way;
//! * with a port cap per IPv6 prefix, it is not the cap key of a prefix
//!   one of whose hosts a mapping uses (see `tables::cap_keys`).
//!
//! `NAT64_HOSTS[host]` goes first, and only if it still names the
//! stand-in, so the host's next packet takes a new stand-in instead of the
//! one being freed; then `NAT64_IDS[stand-in]`, only if it still names the
//! host.
//!
//! What no scan can rule out: a packet of the host that read
//! `NAT64_HOSTS` just before that delete makes a mapping on the stand-in
//! being freed; that mapping's inbound packets are dropped
//! (`nat64_drop_no_host`) until it expires, and the host's next flows use
//! its new stand-in. The two scans confine it to a host silent for over a
//! minute that sends within the microseconds between the read and the
//! delete.
use std::{cell::RefCell, io, os::fd::RawFd};

use nat_common::{Ipv4Be, nat64::Nat64Host};

use super::NS;
use crate::{
    agent::fasthash::{FastSet, Seeded},
    tables::batch,
};

/// How long a new stand-in is left alone (data-plane clock).
pub const STAND_IN_GRACE_NS: u64 = 60 * NS;

/// The maps a scan reads and writes (fds).
pub(super) struct StandInMaps {
    pub ids: RawFd,
    pub hosts: RawFd,
    pub static_out: RawFd,
}

/// The stand-in scans of one sweeper, and what the last one found unused.
pub(super) struct StandInScan {
    suspects: RefCell<FastSet<Ipv4Be>>,
}

impl StandInScan {
    pub fn new() -> Self {
        StandInScan {
            suspects: RefCell::new(FastSet::with_hasher(Seeded::default())),
        }
    }

    /// Frees the stand-ins unused now and at the previous scan (see the
    /// module comment); `used` holds the inside address of every mapping
    /// the sweep left in `NAPT_OUT`; `cap_prefix` the host prefix the port
    /// cap counts over (128: none, or each address alone). Returns how many
    /// it freed.
    pub fn scan(
        &self,
        maps: &StandInMaps,
        used: &FastSet<u32>,
        cap_prefix: u8,
        now: u64,
    ) -> io::Result<usize> {
        let before = self.suspects.take();
        let mut suspects = FastSet::with_hasher(Seeded::default());
        let mut confirmed: Vec<(Ipv4Be, Nat64Host)> = Vec::new();
        let all = batch::lookup_all::<Ipv4Be, Nat64Host>(maps.ids)?;
        let cap_keys = crate::tables::cap_keys::keys_in_use(&all, used, cap_prefix);
        for (stand_in, host) in all {
            if used.contains(&stand_in)
                || cap_keys.contains(&host.addr)
                || now.saturating_sub(host.created) <= STAND_IN_GRACE_NS
                || batch::lookup::<Ipv4Be, Ipv4Be>(maps.static_out, &stand_in)?.is_some()
            {
                continue;
            }
            if before.contains(&stand_in) {
                confirmed.push((stand_in, host));
            } else {
                suspects.insert(stand_in);
            }
        }
        let mut freed = 0;
        for (stand_in, host) in confirmed {
            batch::delete_unchanged(maps.hosts, &[(host.addr, stand_in)], |was, now| was == now)?;
            freed += batch::delete_unchanged(maps.ids, &[(stand_in, host)], |was, now| was == now)?
                .len();
        }
        *self.suspects.borrow_mut() = suspects;
        Ok(freed)
    }
}
