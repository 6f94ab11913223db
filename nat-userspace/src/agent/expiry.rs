//! The agent's expiry sweep: idle sessions go by their per-protocol/state
//! timeout (a mapping's first session, held in the mapping, by clearing its
//! slot); a mapping goes once it has no session left and has itself been
//! idle for its timeout; filter entries go with their mapping's timeout.
//! Port forwards never expire. Sessions are read and deleted in batches;
//! the mappings are walked in the kernel (see [`kernel`]) unless something
//! needs them read out, or `--expiry-walk user` asks for that. Once a
//! minute a sweep also removes `NAPT_IN` entries that no mapping points to
//! (see [`orphans`]) and frees the NAT64 stand-ins no mapping uses (see
//! [`stand_ins`]).
use std::{
    cell::{Cell, RefCell},
    collections::HashSet,
    path::Path,
    time::{Duration, Instant},
};

use nat_common::{
    EndpointKey, FilterKey, FirstSession, InsideEndpoint, Ipv4Be, MAPPING_FORWARD, Mapping,
    NatConfig, SESSION_INBOUND, Session, SessionKey,
    nat64::{Nat64Config, Nat64Host, is_stand_in},
};

mod kernel;
mod orphans;
mod stand_ins;

pub use orphans::ORPHAN_SCAN_INTERVAL_NS;
pub use stand_ins::STAND_IN_GRACE_NS;

use crate::{
    agent::clock,
    agent::fasthash::{FastMap, FastSet, Seeded},
    tables::batch,
    tables::{Table, Tables},
};

const NS: u64 = 1_000_000_000;

/// Entries read (and their expired ones deleted) per step of a sweep:
/// small enough that the chunk's buckets and elements are still in the
/// CPU caches when its deletes follow.
const SWEEP_CHUNK: usize = 4096;

/// A mapping's endpoint (address, port, protocol) packed into one integer.
fn endpoint(addr: u32, port: u16, proto: u8) -> u64 {
    (addr as u64) << 32 | (port as u64) << 16 | proto as u64
}

/// An endpoint packed by [`endpoint`], unpacked.
fn unpack(e: u64) -> EndpointKey {
    EndpointKey {
        addr: (e >> 32) as u32,
        port: (e >> 16) as u16,
        proto: e as u8,
        _pad: 0,
    }
}

/// The public endpoint (`NAPT_IN` key) of filter entry `k`.
fn filter_public(k: &FilterKey) -> EndpointKey {
    EndpointKey {
        addr: k.public_addr,
        port: k.public_port,
        proto: k.proto,
        _pad: 0,
    }
}

/// A filter entry's key packed into one integer.
fn filter(public_addr: u32, remote_addr: u32, public_port: u16, proto: u8) -> u128 {
    (endpoint(public_addr, public_port, proto) as u128) << 32 | remote_addr as u128
}

/// The most agent ticks (seconds) between the starts of two sweeps.
pub const MAX_TICKS_BETWEEN_SWEEPS: u32 = 10;

/// How many agent ticks (one a second) from the start of a sweep that took
/// `took` to the start of the next: every tick while sweeps are cheap, so
/// a binding outlives its timeout by a second at most; when they are not
/// (~0.6 s of CPU for a million live bindings, most of it the kernel's
/// batch calls), far enough apart that sweeping takes at most a tenth of
/// one core, instead of most of it at a CGNAT's table sizes. Timeouts are
/// minutes, so a binding that lingers a few seconds more costs only its
/// port for those seconds.
pub fn ticks_between_sweeps(took: Duration) -> u32 {
    // Ten times the sweep, in whole seconds, rounded up.
    let ticks = took.as_millis().div_ceil(100);
    ticks.clamp(1, MAX_TICKS_BETWEEN_SWEEPS as u128) as u32
}

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Whether the mappings were walked in the kernel (`expired` and
    /// `remaining` are empty then).
    pub in_kernel: bool,
    pub sessions_seen: usize,
    pub sessions_expired: usize,
    pub mappings_seen: usize,
    pub mappings_expired: usize,
    pub filters_expired: usize,
    /// `NAPT_IN` entries removed because no mapping pointed to them.
    pub orphans_removed: usize,
    /// NAT64 stand-ins freed because no mapping used them.
    pub stand_ins_freed: usize,
    pub duration_us: u64,
    /// The dynamic mappings this sweep deleted (for the translation log;
    /// not those someone else deleted first).
    pub expired: Vec<(EndpointKey, Mapping)>,
    /// The mappings left after it (forwards included).
    pub remaining: Vec<(EndpointKey, Mapping)>,
}

pub struct Sweeper {
    sessions: Table<SessionKey, Session>,
    out: Table<EndpointKey, Mapping>,
    inb: Table<EndpointKey, InsideEndpoint>,
    filter: Table<FilterKey, u64>,
    host_ports: Table<Ipv4Be, u64>,
    inbound_sessions: Table<u32, u64>,
    host_pool: Table<Ipv4Be, Ipv4Be>,
    nat64_ids: Table<Ipv4Be, Nat64Host>,
    nat64_hosts: Table<[u8; 16], Ipv4Be>,
    /// NAT64's configuration: its host prefix keys the port cap of IPv6
    /// hosts (see `tables::cap_keys`).
    nat64: aya::maps::Array<aya::maps::MapData, Nat64Config>,
    static_out: Table<Ipv4Be, Ipv4Be>,
    /// Inside hosts whose `HOST_POOL` entry had no mapping behind it at the
    /// last sweep: deleted if they still have none at this one.
    unbound_hosts: RefCell<HashSet<u32>>,
    /// Sessions and mappings seen by the last sweep: the next one sizes
    /// its sets by them instead of growing them a rehash at a time.
    seen: Cell<(usize, usize)>,
    orphans: orphans::OrphanScan,
    stand_ins: stand_ins::StandInScan,
    /// The walk over the mappings in the kernel, where the tables have it.
    kernel: Option<kernel::KernelWalk>,
    /// Whether the caller wants every mapping listed in each report
    /// ([`SweepReport::expired`] and [`SweepReport::remaining`]: the
    /// translation log); then the sweep walks in user space.
    list_mappings: Cell<bool>,
    /// Whether to walk in the kernel where the sweep can (the agent's
    /// default; off with `--expiry-walk user`, and for a sweeper just
    /// opened).
    walk_in_kernel: Cell<bool>,
}

impl Sweeper {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let tables = Tables::at(dir);
        Ok(Self {
            sessions: tables.sessions()?,
            out: tables.napt_out()?,
            inb: tables.napt_in()?,
            filter: tables.filter()?,
            host_ports: tables.host_ports()?,
            inbound_sessions: tables.inbound_sessions()?,
            host_pool: tables.host_pool()?,
            nat64_ids: tables.nat64_ids()?,
            nat64_hosts: tables.nat64_hosts()?,
            nat64: tables.nat64()?,
            static_out: tables.static_out()?,
            unbound_hosts: RefCell::new(HashSet::new()),
            seen: Cell::new((0, 0)),
            orphans: orphans::OrphanScan::new(),
            stand_ins: stand_ins::StandInScan::new(),
            kernel: kernel::KernelWalk::open(dir)?,
            list_mappings: Cell::new(false),
            walk_in_kernel: Cell::new(false),
        })
    }

    /// Whether the sweeps from now on list every mapping in their reports
    /// (`expired`, `remaining`), as the translation log needs; otherwise
    /// those may be empty.
    pub fn list_mappings(&self, on: bool) {
        self.list_mappings.set(on);
    }

    /// Whether the sweeps from now on walk the mappings in the kernel where
    /// they can (`--expiry-walk`: see `settings::ExpiryWalk`).
    pub fn walk_in_kernel(&self, on: bool) {
        self.walk_in_kernel.set(on);
    }

    /// [`Sweeper::walk_in_kernel`], for a sweeper just opened.
    pub fn walking_in_kernel(self, on: bool) -> Self {
        self.walk_in_kernel(on);
        self
    }

    /// One pass over all tables at time `now` (CLOCK_BOOTTIME ns, the data plane clock).
    ///
    /// Cost: each table that can hold expired entries is walked once with
    /// `BPF_MAP_LOOKUP_BATCH` (SESSIONS, NAPT_OUT, FILTER; NAPT_IN only
    /// gets deletes, but for the orphan scan once a minute; SESSIONS and
    /// FILTER hold only what goes beyond each mapping's first session,
    /// usually little), a chunk at a time, and what expired in a chunk is
    /// deleted with `BPF_MAP_DELETE_BATCH` right away, while the kernel
    /// still has those buckets and elements in its caches. The kernel's side
    /// (a few hundred ns per entry read or deleted) is most of a sweep; in
    /// user space an entry costs a set operation or two on packed integer
    /// keys with a fast seeded hash.
    pub fn sweep(&self, cfg: &NatConfig, now: u64) -> anyhow::Result<SweepReport> {
        let started = Instant::now();
        let mut report = SweepReport::default();
        let idle_for = |last: u64, secs: u32| now.saturating_sub(last) > secs as u64 * NS;

        // 1. Sessions beyond the first, noting which mappings still have
        // one, and which (public endpoint, remote address) pairs a live
        // session uses.
        let (sessions_before, mappings_before) = self.seen.get();
        // Distinct inside endpoints with a live session: at most one per
        // mapping.
        let mut live = FastSet::with_capacity_and_hasher(mappings_before, Seeded::default());
        let mut in_use: Vec<u128> = Vec::with_capacity(sessions_before);
        let mut dead: Vec<SessionKey> = Vec::with_capacity(SWEEP_CHUNK);
        let mut inbound_live = 0u64;
        let fd = self.sessions.fd();
        batch::lookup_chunks::<SessionKey, Session>(fd, SWEEP_CHUNK, |keys, values| {
            report.sessions_seen += keys.len();
            dead.clear();
            for (k, s) in keys.iter().zip(values) {
                if idle_for(s.last_seen, cfg.session_timeout(k.proto, s.tcp)) {
                    dead.push(*k);
                } else {
                    inbound_live += u64::from(s.flags & SESSION_INBOUND != 0);
                    live.insert(endpoint(k.inside_addr, k.inside_port, k.proto));
                    in_use.push(filter(s.public_addr, k.remote_addr, s.public_port, k.proto));
                }
            }
            report.sessions_expired += batch::delete(fd, &dead)?;
            Ok(())
        })?;
        drop(dead);
        // The data plane only ever adds to this count: set it to what is
        // live (sessions an inbound packet creates from here to the write
        // are not counted until the next sweep: the cap is that soft).
        batch::update(self.inbound_sessions.fd(), &0u32, &inbound_live)?;

        // 2. First sessions, then mappings without a live session, idle
        // past their timeout.
        let mut held: FastMap<u32, u64> = FastMap::with_hasher(Seeded::default());
        let count_held = cfg.max_ports_per_host != 0;
        let mut public_alive =
            FastSet::with_capacity_and_hasher(mappings_before, Seeded::default());
        // Every mapping left, as its NAPT_IN entry would be: only for an
        // orphan scan.
        let scan_orphans = self.orphans.due(now);
        let mut bound = FastSet::with_capacity_and_hasher(
            if scan_orphans { mappings_before } else { 0 },
            Seeded::default(),
        );
        // The NAT64 stand-ins the mappings left use: only for an orphan
        // scan, which frees the others.
        let mut stand_ins_used: FastSet<u32> = FastSet::with_hasher(Seeded::default());
        // Hosts pinned to a pool address: forgetting the unbound ones needs
        // every mapping's inside address (few entries: read them once).
        let pinned_hosts = batch::lookup_all_split::<u32, u32>(self.host_pool.fd())?.0;
        // In the kernel if asked, and when nothing else is wanted of the
        // mappings than what expires: no per-host counts, no orphan scan,
        // no pinned hosts, no list for the translation log.
        let walk = self.kernel.as_ref().filter(|_| {
            self.walk_in_kernel.get()
                && !count_held
                && !scan_orphans
                && !self.list_mappings.get()
                && pinned_hosts.is_empty()
                && kernel::KernelWalk::can_keep(live.len())
        });
        let (out_fd, in_fd) = (self.out.fd(), self.inb.fd());
        if let Some(walk) = walk {
            report.in_kernel = true;
            let keep: Vec<EndpointKey> = live.iter().map(|e| unpack(*e)).collect();
            let done = walk.run(cfg, now, &keep)?;
            report.mappings_seen += done.mappings_seen as usize;
            report.sessions_seen += done.sessions_seen as usize;
            report.sessions_expired += done.sessions_expired as usize;
            report.mappings_expired += done.mappings_expired as usize;
        } else {
            let mut gone: Vec<usize> = Vec::new();
            report.remaining.reserve(mappings_before);
            let mut dead_out: Vec<EndpointKey> = Vec::with_capacity(SWEEP_CHUNK);
            let mut dead_in: Vec<EndpointKey> = Vec::with_capacity(SWEEP_CHUNK);
            let mut emptied: Vec<(EndpointKey, Mapping)> = Vec::new();
            batch::lookup_chunks::<EndpointKey, Mapping>(out_fd, SWEEP_CHUNK, |keys, values| {
                report.mappings_seen += keys.len();
                dead_out.clear();
                dead_in.clear();
                emptied.clear();
                let chunk_expired = report.expired.len();
                for (k, m) in keys.iter().zip(values) {
                    let mut first_live = m.first.live != 0;
                    let mut first_died = false;
                    if first_live {
                        report.sessions_seen += 1;
                        if idle_for(m.first.last_seen, cfg.session_timeout(k.proto, m.first.tcp)) {
                            report.sessions_expired += 1;
                            (first_live, first_died) = (false, true);
                        }
                    }
                    let expired = m.flags & MAPPING_FORWARD == 0
                        && !first_live
                        && !live.contains(&endpoint(k.addr, k.port, k.proto))
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
                        if first_died {
                            // The mapping stays (another session lives, or it
                            // was used lately): empty the first session's
                            // slot. Sessions made from now on go to SESSIONS.
                            emptied.push((*k, *m));
                        } else if first_live {
                            in_use.push(filter(m.addr, m.first.remote_addr, m.port, k.proto));
                        }
                        report.remaining.push((*k, *m));
                        public_alive.insert(endpoint(m.addr, m.port, k.proto));
                        if scan_orphans {
                            let public = EndpointKey {
                                addr: m.addr,
                                port: m.port,
                                proto: k.proto,
                                _pad: 0,
                            };
                            bound.insert(orphans::binding(&public, k.addr, k.port));
                            if is_stand_in(k.addr) {
                                stand_ins_used.insert(k.addr);
                            }
                        }
                        if count_held && m.flags & MAPPING_FORWARD == 0 {
                            *held.entry(k.addr).or_default() += 1;
                        }
                    }
                }
                // Outbound entry first: once it is gone no packet can refresh
                // the mapping, then the public port is released. A mapping
                // already gone was deleted by someone else since we read it (a
                // flush), who releases its port: by the time we would, a new
                // mapping may hold it.
                gone.clear();
                report.mappings_expired +=
                    batch::delete_noting_missing(out_fd, &dead_out, |i| gone.push(i))?;
                for &i in gone.iter().rev() {
                    dead_in.remove(i);
                    report.expired.remove(chunk_expired + i);
                }
                batch::delete(in_fd, &dead_in)?;
                // Only where the mapping is still there (a flush may have
                // deleted it meanwhile; recreating it would leave it without
                // its public port's NAPT_IN entry). A packet counted on the
                // session between our read and this write is lost with it.
                // Re-read each right before writing, and write only if it is
                // still the same mapping with its first session as read: a
                // packet may have revived the session (then it stays), or a
                // flush deleted the mapping and a packet made a new one for the
                // same inside endpoint, whose public port must not be
                // overwritten with the old one. Only a packet counted between
                // the re-read and the write is lost with the session.
                batch::replace_existing(out_fd, &emptied, |was: &Mapping, now_m: &Mapping| {
                    let same = (now_m.addr, now_m.port, now_m.created, now_m.first)
                        == (was.addr, was.port, was.created, was.first);
                    same.then_some(Mapping {
                        first: FirstSession::default(),
                        ..*now_m
                    })
                })?;
                Ok(())
            })?;
        }
        drop(live);

        // 3. Orphaned NAPT_IN entries and unused NAT64 stand-ins, once a
        // minute.
        if scan_orphans {
            report.orphans_removed = self.orphans.scan(in_fd, out_fd, &bound, now)?;
            let maps = stand_ins::StandInMaps {
                ids: self.nat64_ids.fd(),
                hosts: self.nat64_hosts.fd(),
                static_out: self.static_out.fd(),
            };
            // Cap keys are kept while their prefix's hosts hold mappings.
            let cap_prefix = if count_held { self.host_prefix() } else { 128 };
            report.stand_ins_freed =
                self.stand_ins
                    .scan(&maps, &stand_ins_used, cap_prefix, now)?;
        }
        drop(bound);
        drop(stand_ins_used);

        // 4. Address-dependent filter entries: idle past their mapping's
        // timeout, or their mapping is gone.
        // An entry whose mapping still has a live session with that remote
        // address stays however long it has been idle: an established TCP
        // connection whose server speaks first after a quiet spell must
        // still be admitted. Those idle entries are set aside and checked
        // against the live sessions at the end (there are few).
        // After a walk in the kernel, which lists nothing, each entry's
        // mapping is looked up instead (FILTER holds only the remote
        // addresses beyond each mapping's first session's: usually few).
        let in_kernel = walk.is_some();
        let alive = |k: &FilterKey| -> std::io::Result<bool> {
            if in_kernel {
                let public = filter_public(k);
                Ok(batch::lookup::<EndpointKey, InsideEndpoint>(in_fd, &public)?.is_some())
            } else {
                Ok(public_alive.contains(&endpoint(k.public_addr, k.public_port, k.proto)))
            }
        };
        let mut dead: Vec<FilterKey> = Vec::with_capacity(SWEEP_CHUNK);
        let mut idle: FastMap<u128, FilterKey> = FastMap::with_hasher(Seeded::default());
        let fd = self.filter.fd();
        batch::lookup_chunks::<FilterKey, u64>(fd, SWEEP_CHUNK, |keys, values| {
            dead.clear();
            for (k, last) in keys.iter().zip(values) {
                if !alive(k)? {
                    dead.push(*k);
                } else if idle_for(*last, cfg.mapping_timeout(k.proto)) {
                    idle.insert(
                        filter(k.public_addr, k.remote_addr, k.public_port, k.proto),
                        *k,
                    );
                }
            }
            report.filters_expired += batch::delete(fd, &dead)?;
            Ok(())
        })?;
        if !idle.is_empty() {
            for f in &in_use {
                idle.remove(f);
            }
            if in_kernel {
                // The first sessions' remote addresses were not listed.
                let mut used = Vec::new();
                for (f, k) in &idle {
                    if self.first_session_uses(k)? {
                        used.push(*f);
                    }
                }
                for f in used {
                    idle.remove(&f);
                }
            }
            let unused: Vec<FilterKey> = idle.into_values().collect();
            report.filters_expired += batch::delete(fd, &unused)?;
        }

        // 5. Per-host port counts, recounted so kernel-side races and
        // expiries never leave the cap drifting.
        if count_held {
            let held = crate::tables::cap_keys::aggregate(
                held,
                self.nat64_ids.fd(),
                self.nat64_hosts.fd(),
                self.host_prefix(),
            )?;
            self.recount_host_ports(&held)?;
        }
        // 5. Pool addresses of hosts that no longer hold a binding.
        self.forget_unbound_hosts(pinned_hosts, &report.remaining)?;
        self.seen.set((report.sessions_seen, report.mappings_seen));
        report.duration_us = started.elapsed().as_micros() as u64;
        Ok(report)
    }

    /// Deletes the `HOST_POOL` entries of hosts that held no dynamic
    /// mapping at this sweep and the last one: such a host gets a pool
    /// address by the hash again (the current pool's). Two sweeps, because
    /// the data plane writes a host's entry just before its first mapping,
    /// which this sweep's read of `NAPT_OUT` may have missed.
    /// `hosts`: the `HOST_POOL` entries as this sweep read them before its
    /// walk over the mappings.
    fn forget_unbound_hosts(
        &self,
        hosts: Vec<u32>,
        remaining: &[(EndpointKey, Mapping)],
    ) -> anyhow::Result<()> {
        let bound: HashSet<u32> = remaining
            .iter()
            .filter(|(_, m)| m.flags & MAPPING_FORWARD == 0)
            .map(|(k, _)| k.addr)
            .collect();
        let fd = self.host_pool.fd();
        let unbound: HashSet<u32> = hosts.into_iter().filter(|h| !bound.contains(h)).collect();
        let mut last = self.unbound_hosts.borrow_mut();
        let gone: Vec<u32> = unbound.intersection(&last).copied().collect();
        batch::delete(fd, &gone)?;
        *last = unbound;
        Ok(())
    }

    /// Whether the mapping of filter entry `k`'s public endpoint has a live
    /// first session with `k`'s remote address.
    fn first_session_uses(&self, k: &FilterKey) -> anyhow::Result<bool> {
        let public = filter_public(k);
        let Some(inside) = batch::lookup::<EndpointKey, InsideEndpoint>(self.inb.fd(), &public)?
        else {
            return Ok(false);
        };
        let Some(m) = batch::lookup::<EndpointKey, Mapping>(self.out.fd(), &inside.key(k.proto))?
        else {
            return Ok(false);
        };
        Ok((m.addr, m.port) == (k.public_addr, k.public_port)
            && m.first.live != 0
            && m.first.remote_addr == k.remote_addr)
    }

    /// NAT64's host prefix (128 while NAT64 is off: nothing to share).
    fn host_prefix(&self) -> u8 {
        self.nat64
            .get(&0, 0)
            .ok()
            .filter(|c| c.enabled != 0)
            .map_or(128, |c| c.host_prefix)
    }

    fn recount_host_ports(&self, held: &FastMap<u32, u64>) -> anyhow::Result<()> {
        let fd = self.host_ports.fd();
        let (addrs, counts) = batch::lookup_all_split::<u32, u64>(fd)?;
        let mut current: FastMap<u32, u64> =
            FastMap::with_capacity_and_hasher(addrs.len(), Seeded::default());
        let mut gone = Vec::new();
        for (addr, n) in addrs.into_iter().zip(counts) {
            if held.contains_key(&addr) {
                current.insert(addr, n);
            } else {
                gone.push(addr);
            }
        }
        batch::delete(fd, &gone)?;
        for (addr, n) in held {
            if current.get(addr) == Some(n) {
                continue;
            }
            match batch::update(fd, addr, n) {
                Ok(()) => {}
                // More inside hosts than the table holds (MAX_HOSTS): like
                // the data plane, leave this one uncounted.
                Err(e) if e.raw_os_error() == Some(libc::E2BIG) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Convenience for one sweep from a directory, at the current time.
pub fn sweep_now(dir: &Path, cfg: &NatConfig) -> anyhow::Result<SweepReport> {
    Sweeper::open(dir)?.sweep(cfg, clock::now_ns())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_sweeps_run_every_tick() {
        for ms in [0, 1, 50, 100] {
            assert_eq!(
                ticks_between_sweeps(Duration::from_millis(ms)),
                1,
                "{ms} ms"
            );
        }
    }

    #[test]
    fn long_sweeps_keep_to_a_tenth_of_a_core() {
        assert_eq!(ticks_between_sweeps(Duration::from_millis(101)), 2);
        assert_eq!(ticks_between_sweeps(Duration::from_millis(575)), 6);
        for ms in [150, 575, 999] {
            let took = Duration::from_millis(ms);
            let every = Duration::from_secs(ticks_between_sweeps(took).into());
            assert!(
                took.as_secs_f64() / every.as_secs_f64() <= 0.1,
                "{ms} ms every {every:?}"
            );
        }
    }

    #[test]
    fn sweeps_are_never_further_apart_than_the_cap() {
        for secs in [1, 2, 60] {
            assert_eq!(
                ticks_between_sweeps(Duration::from_secs(secs)),
                MAX_TICKS_BETWEEN_SWEEPS
            );
        }
    }
}
