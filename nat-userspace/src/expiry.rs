//! The agent's expiry sweep: idle sessions go by their per-protocol/state
//! timeout; a mapping goes once it has no session left and has itself been
//! idle for its timeout; filter entries go with their mapping's timeout.
//! Port forwards never expire. Everything is read and deleted in batches.
use std::{collections::HashMap as StdHashMap, collections::HashSet, path::Path, time::Instant};

use nat_common::{
    EndpointKey, FilterKey, MAP_FILTER, MAP_HOST_PORTS, MAP_NAPT_IN, MAP_NAPT_OUT, MAP_SESSIONS,
    MAPPING_FORWARD, Mapping, NatConfig, Session, SessionKey,
};

use crate::{batch, clock, pinned::RawMap};

const NS: u64 = 1_000_000_000;

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub sessions_seen: usize,
    pub sessions_expired: usize,
    pub mappings_seen: usize,
    pub mappings_expired: usize,
    pub filters_expired: usize,
    pub duration_us: u64,
    /// The dynamic mappings this sweep deleted (for the translation log).
    pub expired: Vec<(EndpointKey, Mapping)>,
    /// The mappings left after it (forwards included).
    pub remaining: Vec<(EndpointKey, Mapping)>,
}

pub struct Sweeper {
    sessions: RawMap,
    out: RawMap,
    inb: RawMap,
    filter: RawMap,
    host_ports: RawMap,
}

impl Sweeper {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            sessions: RawMap::open(dir, MAP_SESSIONS)?,
            out: RawMap::open(dir, MAP_NAPT_OUT)?,
            inb: RawMap::open(dir, MAP_NAPT_IN)?,
            filter: RawMap::open(dir, MAP_FILTER)?,
            host_ports: RawMap::open(dir, MAP_HOST_PORTS)?,
        })
    }

    /// One pass over all tables at time `now` (data plane clock ns (CLOCK_MONOTONIC_COARSE)).
    pub fn sweep(&self, cfg: &NatConfig, now: u64) -> anyhow::Result<SweepReport> {
        let started = Instant::now();
        let mut report = SweepReport::default();
        let idle_for = |last: u64, secs: u32| now.saturating_sub(last) > secs as u64 * NS;

        // 1. Sessions, noting which mappings still have one.
        let sessions = batch::lookup_all::<SessionKey, Session>(self.sessions.fd())?;
        report.sessions_seen = sessions.len();
        let mut live: HashSet<EndpointKey> = HashSet::with_capacity(sessions.len());
        let mut expired = Vec::new();
        for (k, s) in &sessions {
            if idle_for(s.last_seen, cfg.session_timeout(k.proto, s.tcp)) {
                expired.push(*k);
            } else {
                live.insert(EndpointKey {
                    addr: k.inside_addr,
                    port: k.inside_port,
                    proto: k.proto,
                    _pad: 0,
                });
            }
        }
        report.sessions_expired = batch::delete(self.sessions.fd(), &expired)?;
        let expired_set: HashSet<SessionKey> = expired.iter().copied().collect();

        // 2. Mappings without a live session, idle past their timeout.
        let mappings = batch::lookup_all::<EndpointKey, Mapping>(self.out.fd())?;
        report.mappings_seen = mappings.len();
        let mut dead_out = Vec::new();
        let mut dead_in = Vec::new();
        let mut held: StdHashMap<u32, u64> = StdHashMap::new();
        let mut public_alive: HashSet<(u32, u16, u8)> = HashSet::new();
        for (k, m) in &mappings {
            let expired = m.flags & MAPPING_FORWARD == 0
                && !live.contains(k)
                && idle_for(m.last_seen, cfg.mapping_timeout(k.proto));
            if expired {
                report.expired.push((*k, *m));
                dead_out.push(*k);
                dead_in.push(EndpointKey {
                    addr: m.addr,
                    port: m.port,
                    proto: k.proto,
                    _pad: 0,
                });
            } else {
                report.remaining.push((*k, *m));
                public_alive.insert((m.addr, m.port, k.proto));
                if m.flags & MAPPING_FORWARD == 0 {
                    *held.entry(k.addr).or_default() += 1;
                }
            }
        }
        // Outbound entry first: once it is gone no packet can refresh the
        // mapping, then the public port is released.
        report.mappings_expired = batch::delete(self.out.fd(), &dead_out)?;
        batch::delete(self.inb.fd(), &dead_in)?;

        // 3. Address-dependent filter entries: idle past their mapping's
        // timeout, or their mapping is gone.
        // An entry whose mapping still has a live session with that remote
        // address stays however long it has been idle: an established TCP
        // connection whose server speaks first after a quiet spell must
        // still be admitted.
        let in_use: HashSet<FilterKey> = sessions
            .iter()
            .filter(|(k, _)| !expired_set.contains(k))
            .map(|(k, s)| FilterKey {
                public_addr: s.public_addr,
                remote_addr: k.remote_addr,
                public_port: s.public_port,
                proto: k.proto,
                _pad: 0,
            })
            .collect();
        let filters = batch::lookup_all::<FilterKey, u64>(self.filter.fd())?;
        let dead_filters: Vec<FilterKey> = filters
            .iter()
            .filter(|(k, last)| {
                !public_alive.contains(&(k.public_addr, k.public_port, k.proto))
                    || (!in_use.contains(k) && idle_for(*last, cfg.mapping_timeout(k.proto)))
            })
            .map(|(k, _)| *k)
            .collect();
        report.filters_expired = batch::delete(self.filter.fd(), &dead_filters)?;

        // 4. Per-host port counts, recounted so kernel-side races and
        // expiries never leave the cap drifting.
        if cfg.max_ports_per_host != 0 {
            self.recount_host_ports(&held)?;
        }
        report.duration_us = started.elapsed().as_micros() as u64;
        Ok(report)
    }

    fn recount_host_ports(&self, held: &StdHashMap<u32, u64>) -> anyhow::Result<()> {
        let current = batch::lookup_all::<u32, u64>(self.host_ports.fd())?;
        let gone: Vec<u32> = current
            .iter()
            .filter(|(a, _)| !held.contains_key(a))
            .map(|(a, _)| *a)
            .collect();
        batch::delete(self.host_ports.fd(), &gone)?;
        for (addr, n) in held {
            batch::update(self.host_ports.fd(), addr, n)?;
        }
        Ok(())
    }
}

/// Convenience for one sweep from a directory, at the current time.
pub fn sweep_now(dir: &Path, cfg: &NatConfig) -> anyhow::Result<SweepReport> {
    Sweeper::open(dir)?.sweep(cfg, clock::now_ns())
}
