//! Support for the dynamic NAPT packet tests (`tests/packet_napt.rs`): one
//! loaded instance of xnat's BPF object with typed access to every NAPT map
//! (CONFIG, POOL, INTERNAL, NAPT_OUT, NAPT_IN, SESSIONS, FILTER, HOST_PORTS,
//! EVENTS) and the static table, so a test can prepare state, run a frame
//! through a program and inspect what the program left behind.
//!
//! Sessions live in two places (layout 4): a mapping's first session in its
//! `NAPT_OUT` value ([`Mapping::first`]), the others in `SESSIONS`.
//! [`Napt::session`], [`Napt::sessions`] and [`all_sessions`] give the
//! logical session set, in `SESSIONS`' key/value form, wherever each is
//! held; [`Napt::table_sessions`] and friends read `SESSIONS` alone, for
//! tests about the layout itself.
//!
//! The maps are not pinned: every [`Napt`] has its own, so tests running in
//! parallel threads never see each other's state. Running programs reuses
//! [`crate::bpf::Hook`] and [`crate::bpf::Outcome`].
//!
//! Addresses and ports in keys and values are in network byte order as in
//! the packet; [`Endpoint`], [`be`] and [`ip`] convert.

use std::net::Ipv4Addr;

use anyhow::Result;
use aya::Ebpf;
use aya::maps::lpm_trie::Key as LpmKey;
use nat_common::stats::COUNTER_COUNT;
use nat_common::{
    Counter, EVENT_QUOTE_MAX, EndpointKey, FilterKey, FirstSession, InsideEndpoint,
    MAPPING_FORWARD, Mapping, NatConfig, PINNED_LOOKUP, PINNED_NONE, Session, SessionKey,
};
use nat_userspace::settings::napt::NaptSettings;
use nat_userspace::tables::{Loaded, LoadedRef, paired};

use crate::bpf::{Hook, Outcome, Read, Write, require_root};

/// An address as the maps hold it (network order in a native `u32`).
pub fn be(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

/// The inverse of [`be`].
pub fn ip(addr: u32) -> Ipv4Addr {
    Ipv4Addr::from(addr.to_ne_bytes())
}

/// The data plane's clock (CLOCK_BOOTTIME, read once per tick per CPU by
/// the programs) in ns: what it stamps mappings, sessions and fragments
/// with.
pub fn dataplane_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; the clock always exists on Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_BOOTTIME)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The times the data plane may stamp on something done between reading
/// [`dataplane_now_ns`] as `t0` and as `t1`: its clock is cached per CPU
/// per jiffy, so it can lag the user-space reading by a tick or two (20 ms
/// at HZ=100; the slack covers that with room).
pub fn clock_window(t0: u64, t1: u64) -> std::ops::RangeInclusive<u64> {
    const SLACK_NS: u64 = 50_000_000;
    t0.saturating_sub(SLACK_NS)..=t1
}

/// A transport endpoint in host terms (port in host order; for ICMP
/// queries the port is the identifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub proto: u8,
}

impl Endpoint {
    pub fn new(addr: Ipv4Addr, port: u16, proto: u8) -> Self {
        Endpoint { addr, port, proto }
    }

    /// The `NAPT_OUT` / `NAPT_IN` key of this endpoint.
    pub fn key(&self) -> EndpointKey {
        EndpointKey {
            addr: be(self.addr),
            port: self.port.to_be(),
            proto: self.proto,
            _pad: 0,
        }
    }

    pub fn from_key(k: &EndpointKey) -> Self {
        Endpoint {
            addr: ip(k.addr),
            port: u16::from_be(k.port),
            proto: k.proto,
        }
    }

    /// The public endpoint a `NAPT_OUT` value points at (same protocol as
    /// `self`).
    pub fn of_mapping(&self, m: &Mapping) -> Self {
        Endpoint {
            addr: ip(m.addr),
            port: u16::from_be(m.port),
            proto: self.proto,
        }
    }

    /// The inside endpoint a `NAPT_IN` value points at (same protocol as
    /// `self`).
    pub fn of_inside(&self, i: &InsideEndpoint) -> Self {
        Endpoint {
            addr: ip(i.addr),
            port: u16::from_be(i.port),
            proto: self.proto,
        }
    }

    /// A `NAPT_OUT` value pointing at this (public) endpoint, without a
    /// first session (as a port forward has).
    pub fn as_mapping(&self, flags: u16, created: u64, last_seen: u64) -> Mapping {
        Mapping {
            addr: be(self.addr),
            port: self.port.to_be(),
            flags,
            created,
            last_seen,
            first: FirstSession::default(),
        }
    }

    /// A `NAPT_IN` value pointing at this (inside) endpoint.
    pub fn as_inside(&self, flags: u16) -> InsideEndpoint {
        InsideEndpoint {
            addr: be(self.addr),
            port: self.port.to_be(),
            flags,
        }
    }
}

/// A live first session with `remote` (port in host order; 0 for ICMP),
/// last seen at `last_seen`, with `tcp` bits and no traffic counted.
pub fn first_session(remote: (Ipv4Addr, u16), last_seen: u64, tcp: u8) -> FirstSession {
    FirstSession {
        remote_addr: be(remote.0),
        remote_port: remote.1.to_be(),
        tcp,
        live: 1,
        last_seen,
        ..Default::default()
    }
}

/// The `NAPT_OUT` key of the inside endpoint of session `k`.
pub fn inside_key(k: &SessionKey) -> EndpointKey {
    EndpointKey {
        addr: k.inside_addr,
        port: k.inside_port,
        proto: k.proto,
        _pad: 0,
    }
}

/// Session `k`, if it is the (live) first session of `m`, the `NAPT_OUT`
/// value of [`inside_key`]`(k)`.
pub fn first_as_session(m: &Mapping, k: &SessionKey) -> Option<Session> {
    if !m.first_is(k.remote_addr, k.remote_port) {
        return None;
    }
    m.first_session(&inside_key(k)).map(|(_, s)| s)
}

/// The logical session set: the live first sessions of the mappings in
/// `out` (a `NAPT_OUT` dump) and the entries of `SESSIONS` (`table`), all
/// in `SESSIONS`' key/value form, sorted by key. What `xnat flows` lists.
pub fn all_sessions(
    out: &[(EndpointKey, Mapping)],
    table: &[(SessionKey, Session)],
) -> Vec<(SessionKey, Session)> {
    let mut v: Vec<(SessionKey, Session)> = out
        .iter()
        .filter_map(|(k, m)| m.first_session(k))
        .chain(table.iter().copied())
        .collect();
    v.sort_by_key(|(k, _)| sk_ord(k));
    v
}

/// The `SESSIONS` key of a flow between `inside` and `remote` (ports in
/// host order; 0 as the remote port of an ICMP query).
pub fn session_key(proto: u8, inside: (Ipv4Addr, u16), remote: (Ipv4Addr, u16)) -> SessionKey {
    SessionKey {
        inside_addr: be(inside.0),
        remote_addr: be(remote.0),
        inside_port: inside.1.to_be(),
        remote_port: remote.1.to_be(),
        proto,
        _pad: [0; 3],
    }
}

/// The `FILTER` key admitting `remote` to the public endpoint `public`.
pub fn filter_key(public: Endpoint, remote: Ipv4Addr) -> FilterKey {
    FilterKey {
        public_addr: be(public.addr),
        remote_addr: be(remote),
        public_port: public.port.to_be(),
        proto: public.proto,
        _pad: 0,
    }
}

/// A NAPT configuration with the control plane's defaults (ports
/// 1024–65535, address-dependent filtering, RFC timeouts, no per-host cap)
/// and an empty pool; [`Napt::set_pool`] fills `pool_len`.
/// Built by the product's own conversion ([`NaptSettings::config`]).
pub fn default_config() -> NatConfig {
    NaptSettings::default().config()
}

/// `INTERNAL`'s entries for inside prefixes (host-order network, length),
/// numbered as reconcile numbers them: ascending order, each prefix's
/// value the offset of its first host (`nat_common::deterministic`).
pub fn internal_entries(prefixes: &[(u32, u32)]) -> Vec<(u32, u32, u32)> {
    let mut sorted = prefixes.to_vec();
    sorted.sort();
    let mut first = 0u64;
    sorted
        .into_iter()
        .map(|(net, len)| {
            let offset = nat_common::deterministic::host_offset(net, first as u32);
            first += 1u64 << (32 - len);
            (net, len, offset)
        })
        .collect()
}

/// One record of the `EVENTS` ring buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub kind: u32,
    pub quote_len: u32,
    /// The pool address the refused mapping would have had (network order).
    pub public_addr: u32,
    /// The cap a host reached (`EVENT_HOST_CAP`).
    pub limit: u32,
    /// All `EVENT_QUOTE_MAX` bytes of the quote field.
    pub quote: Vec<u8>,
    /// Size of the ring-buffer record in bytes.
    pub record_len: usize,
}

impl EventRecord {
    /// The valid part of the quote.
    pub fn quoted(&self) -> &[u8] {
        &self.quote[..(self.quote_len as usize).min(self.quote.len())]
    }
}

/// Everything NAPT keeps, for before/after comparisons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaptState {
    /// NAPT_OUT, first sessions included.
    pub out: Vec<(EndpointKey, Mapping)>,
    pub inb: Vec<(EndpointKey, InsideEndpoint)>,
    /// SESSIONS only (sessions beyond each mapping's first).
    pub session_table: Vec<(SessionKey, Session)>,
    pub filter: Vec<(FilterKey, u64)>,
    pub host_ports: Vec<(u32, u64)>,
}

impl NaptState {
    /// Every session, first sessions included ([`all_sessions`]).
    pub fn sessions(&self) -> Vec<(SessionKey, Session)> {
        all_sessions(&self.out, &self.session_table)
    }
}

/// One loaded instance of xnat's BPF object (programs loaded, not
/// attached), with its own maps.
pub struct Napt {
    ebpf: Ebpf,
}

fn sorted<K: Ord + Copy, V: Copy>(mut v: Vec<(K, V)>) -> Vec<(K, V)> {
    v.sort_by_key(|(k, _)| *k);
    v
}

fn ep_ord(k: &EndpointKey) -> (u32, u16, u8) {
    (k.addr, k.port, k.proto)
}

fn sk_ord(k: &SessionKey) -> (u32, u32, u16, u16, u8) {
    (
        k.inside_addr,
        k.remote_addr,
        k.inside_port,
        k.remote_port,
        k.proto,
    )
}

fn fk_ord(k: &FilterKey) -> (u32, u32, u16, u8) {
    (k.public_addr, k.remote_addr, k.public_port, k.proto)
}

impl Napt {
    /// Loads the object and all three programs, with NAPT off (empty
    /// CONFIG). Panics with the reason if that fails, after checking for
    /// root.
    pub fn load() -> Self {
        require_root();
        Self::try_load().unwrap_or_else(|e| panic!("loading xnat's BPF object: {e:#}"))
    }

    pub fn try_load() -> Result<Self> {
        let ebpf =
            crate::bpf::load_object(&mut aya::EbpfLoader::new(), &crate::bpf::EXTERNAL_PROGRAMS)?;
        Ok(Napt { ebpf })
    }

    /// Loads an instance with NAPT on: `pool`, `internal` prefixes and the
    /// [`default_config`] changed by `tweak`.
    pub fn with(
        pool: &[Ipv4Addr],
        internal: &[(Ipv4Addr, u32)],
        tweak: impl FnOnce(&mut NatConfig),
    ) -> Self {
        let mut n = Self::load();
        let mut cfg = default_config();
        tweak(&mut cfg);
        n.set_config(cfg);
        for &(net, len) in internal {
            n.add_internal(net, len);
        }
        n.set_pool(pool);
        n
    }

    // ------------------------------------------------------------ config

    pub fn config(&self) -> NatConfig {
        let a = LoadedRef::new(&self.ebpf).config().expect("CONFIG");
        a.get(&0, 0).expect("reading CONFIG[0]")
    }

    pub fn set_config(&mut self, cfg: NatConfig) {
        let mut a = Loaded::new(&mut self.ebpf).config().expect("CONFIG");
        a.set(0, cfg, 0).expect("writing CONFIG[0]");
    }

    /// Changes the configuration in force.
    pub fn update_config(&mut self, f: impl FnOnce(&mut NatConfig)) {
        let mut cfg = self.config();
        f(&mut cfg);
        self.set_config(cfg);
    }

    /// Writes `pool` into POOL and its length into CONFIG (0 turns NAPT
    /// off), pinning the hosts with bindings to their pool address first
    /// as reconcile does (`nat_userspace::tables::paired`).
    pub fn set_pool(&mut self, pool: &[Ipv4Addr]) {
        let pool_be: Vec<u32> = pool.iter().map(|a| be(*a)).collect();
        let bindings = crate::bpf::all(&self.ebpf, LoadedRef::napt_out);
        for (host, addr) in paired::pins(&bindings, &pool_be) {
            crate::bpf::put(&mut self.ebpf, Loaded::host_pool, host, addr);
        }
        {
            let mut a = Loaded::new(&mut self.ebpf).pool().expect("POOL");
            for (i, addr) in pool_be.iter().enumerate() {
                a.set(i as u32, *addr, 0).expect("writing POOL");
            }
        }
        let pinned = !crate::bpf::all(&self.ebpf, LoadedRef::host_pool).is_empty();
        self.update_config(|c| {
            c.pool_len = pool.len() as u32;
            c.pinned_hosts = if pinned { PINNED_LOOKUP } else { PINNED_NONE };
        });
    }

    /// Adds an inside prefix (sources translated by NAPT), renumbering
    /// the hosts of all of them as reconcile does (ascending order, for
    /// deterministic allocation).
    pub fn add_internal(&mut self, net: Ipv4Addr, prefix_len: u32) {
        let mut t = Loaded::new(&mut self.ebpf).internal().expect("INTERNAL");
        let mut all: Vec<(u32, u32)> = t
            .keys()
            .map(|k| {
                let k = k.expect("reading INTERNAL");
                (u32::from_be(k.data()), k.prefix_len())
            })
            .collect();
        all.push((u32::from(net), prefix_len));
        all.sort();
        all.dedup();
        for (n, len, offset) in internal_entries(&all) {
            t.insert(&LpmKey::new(len, n.to_be()), offset, 0)
                .expect("inserting into INTERNAL");
        }
    }

    /// Adds a static 1:1 mapping `private <-> public`.
    pub fn add_static(&mut self, private: Ipv4Addr, public: Ipv4Addr) {
        crate::bpf::add_static(&mut self.ebpf, private, public);
    }

    // ------------------------------------------------------------ running

    /// The loaded object, to run its programs some other way (e.g. on
    /// CHECKSUM_PARTIAL skbs, [`crate::skb_csum`]).
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Runs `frame` through the program of `hook` once (repeat 1: the
    /// kernel does not reset the packet between repeats).
    pub fn try_run(&self, hook: Hook, frame: &[u8]) -> Result<Outcome> {
        crate::bpf::try_run(&self.ebpf, hook, frame)
    }

    #[track_caller]
    pub fn run(&self, hook: Hook, frame: &[u8]) -> Outcome {
        self.try_run(hook, frame)
            .unwrap_or_else(|e| panic!("{hook:?}: {e:#}"))
    }

    // ------------------------------------------------------------ counters

    pub fn counter(&self, c: Counter) -> u64 {
        self.counters()[c as usize]
    }

    /// All counters summed over all CPUs, indexed by [`Counter`].
    pub fn counters(&self) -> [u64; COUNTER_COUNT as usize] {
        crate::bpf::counters(&self.ebpf)
    }

    // ------------------------------------------------------------ maps

    fn get<'e, K: aya::Pod, V: aya::Pod>(
        &'e self,
        table: impl FnOnce(&LoadedRef<'e>) -> Result<Read<'e, K, V>>,
        k: &K,
    ) -> Option<V> {
        crate::bpf::get(&self.ebpf, table, k)
    }

    fn all<'e, K: aya::Pod, V: aya::Pod>(
        &'e self,
        table: impl FnOnce(&LoadedRef<'e>) -> Result<Read<'e, K, V>>,
    ) -> Vec<(K, V)> {
        crate::bpf::all(&self.ebpf, table)
    }

    fn put<'e, K: aya::Pod, V: aya::Pod>(
        &'e mut self,
        table: impl FnOnce(Loaded<'e>) -> Result<Write<'e, K, V>>,
        k: K,
        v: V,
    ) {
        crate::bpf::put(&mut self.ebpf, table, k, v)
    }

    /// The mapping of inside endpoint `inside` (NAPT_OUT).
    pub fn napt_out(&self, inside: Endpoint) -> Option<Mapping> {
        self.get(LoadedRef::napt_out, &inside.key())
    }

    /// The inside endpoint behind public endpoint `public` (NAPT_IN).
    pub fn napt_in(&self, public: Endpoint) -> Option<InsideEndpoint> {
        self.get(LoadedRef::napt_in, &public.key())
    }

    /// The public endpoint of inside endpoint `inside`, if mapped.
    pub fn public_of(&self, inside: Endpoint) -> Option<Endpoint> {
        self.napt_out(inside).map(|m| inside.of_mapping(&m))
    }

    pub fn napt_out_all(&self) -> Vec<(EndpointKey, Mapping)> {
        let mut v = self.all(LoadedRef::napt_out);
        v.sort_by_key(|(k, _)| ep_ord(k));
        v
    }

    pub fn napt_in_all(&self) -> Vec<(EndpointKey, InsideEndpoint)> {
        let mut v = self.all(LoadedRef::napt_in);
        v.sort_by_key(|(k, _)| ep_ord(k));
        v
    }

    /// Writes a NAPT_OUT entry only.
    pub fn put_napt_out(&mut self, inside: Endpoint, value: Mapping) {
        self.put(Loaded::napt_out, inside.key(), value);
    }

    /// Writes a NAPT_IN entry only (e.g. to occupy a public port).
    pub fn put_napt_in(&mut self, public: Endpoint, value: InsideEndpoint) {
        self.put(Loaded::napt_in, public.key(), value);
    }

    /// Writes a mapping pair `inside <-> public` (both directions), without
    /// a first session.
    pub fn add_mapping(&mut self, inside: Endpoint, public: Endpoint, flags: u16, at: u64) {
        assert_eq!(inside.proto, public.proto);
        self.put_napt_out(inside, public.as_mapping(flags, at, at));
        self.put_napt_in(public, inside.as_inside(flags));
    }

    /// Changes the NAPT_OUT value of `inside` (which must exist).
    pub fn update_mapping(&mut self, inside: Endpoint, f: impl FnOnce(&mut Mapping)) {
        let mut m = self
            .napt_out(inside)
            .unwrap_or_else(|| panic!("no NAPT_OUT entry for {inside:?}"));
        f(&mut m);
        self.put_napt_out(inside, m);
    }

    /// Replaces the first session of the mapping of `inside`
    /// (`FirstSession::default()` empties the slot, as the sweep does).
    pub fn set_first(&mut self, inside: Endpoint, first: FirstSession) {
        self.update_mapping(inside, |m| m.first = first);
    }

    /// A port forward as `xnat forward add` writes it.
    pub fn add_forward(&mut self, public: Endpoint, inside: Endpoint) {
        self.add_mapping(inside, public, MAPPING_FORWARD, 0);
    }

    /// Sets `last_seen` of the mapping of `inside` (NAPT_OUT: the only
    /// entry with a time).
    pub fn set_mapping_last_seen(&mut self, inside: Endpoint, last_seen: u64) {
        self.update_mapping(inside, |m| m.last_seen = last_seen);
    }

    /// The mapping whose first session `k` would be, if it is.
    fn first_holder(&self, k: &SessionKey) -> Option<(EndpointKey, Mapping)> {
        let inside = inside_key(k);
        let m: Mapping = self.get(LoadedRef::napt_out, &inside)?;
        m.first_is(k.remote_addr, k.remote_port)
            .then_some((inside, m))
    }

    /// The session `k`, wherever it is held: its mapping's first session
    /// when that is live with `k`'s remote endpoint, else `SESSIONS`.
    pub fn session(&self, k: &SessionKey) -> Option<Session> {
        match self.first_holder(k) {
            Some((inside, m)) => m.first_session(&inside).map(|(_, s)| s),
            None => self.table_session(k),
        }
    }

    /// Whether session `k` is held as its mapping's first session.
    pub fn is_first(&self, k: &SessionKey) -> bool {
        self.first_holder(k).is_some()
    }

    /// Every session (first sessions and `SESSIONS`), sorted by key.
    pub fn sessions(&self) -> Vec<(SessionKey, Session)> {
        all_sessions(&self.napt_out_all(), &self.table_sessions())
    }

    /// Writes session `k` where it is held: into its mapping's first
    /// session when that has `k`'s remote endpoint (only the fields a
    /// first session has: `created` and the public endpoint belong to the
    /// mapping), else into `SESSIONS`.
    pub fn put_session(&mut self, k: SessionKey, s: Session) {
        match self.first_holder(&k) {
            Some((inside, mut m)) => {
                m.first = FirstSession {
                    remote_addr: k.remote_addr,
                    remote_port: k.remote_port,
                    tcp: s.tcp,
                    live: 1,
                    last_seen: s.last_seen,
                    packets_out: s.packets_out,
                    packets_in: s.packets_in,
                    bytes_out: s.bytes_out,
                    bytes_in: s.bytes_in,
                };
                self.put(Loaded::napt_out, inside, m);
            }
            None => self.put_table_session(k, s),
        }
    }

    /// The `SESSIONS` entry `k` only.
    pub fn table_session(&self, k: &SessionKey) -> Option<Session> {
        self.get(LoadedRef::sessions, k)
    }

    /// The `SESSIONS` table only, sorted by key.
    pub fn table_sessions(&self) -> Vec<(SessionKey, Session)> {
        let mut v = self.all(LoadedRef::sessions);
        v.sort_by_key(|(k, _)| sk_ord(k));
        v
    }

    /// Writes a `SESSIONS` entry.
    pub fn put_table_session(&mut self, k: SessionKey, s: Session) {
        self.put(Loaded::sessions, k, s);
    }

    pub fn filter(&self, k: &FilterKey) -> Option<u64> {
        self.get(LoadedRef::filter, k)
    }

    pub fn filter_all(&self) -> Vec<(FilterKey, u64)> {
        let mut v = self.all(LoadedRef::filter);
        v.sort_by_key(|(k, _)| fk_ord(k));
        v
    }

    /// `INBOUND_SESSIONS`: the data plane's count of sessions inbound
    /// packets created.
    pub fn inbound_sessions(&self) -> u64 {
        let a = LoadedRef::new(&self.ebpf)
            .inbound_sessions()
            .expect("INBOUND_SESSIONS");
        a.get(&0, 0).expect("INBOUND_SESSIONS[0]")
    }

    pub fn host_ports(&self, inside: Ipv4Addr) -> Option<u64> {
        self.get(LoadedRef::host_ports, &be(inside))
    }

    pub fn set_host_ports(&mut self, inside: Ipv4Addr, n: u64) {
        self.put(Loaded::host_ports, be(inside), n);
    }

    /// Everything NAPT keeps, sorted, for before/after comparisons.
    pub fn state(&self) -> NaptState {
        NaptState {
            out: self.napt_out_all(),
            inb: self.napt_in_all(),
            session_table: self.table_sessions(),
            filter: self.filter_all(),
            host_ports: sorted(self.all(LoadedRef::host_ports)),
        }
    }

    /// Fills the hash map `table` opens (`Loaded::napt_out`, …; keys built
    /// by `key(i)`) with `n` entries of value `v`; stops early and returns
    /// how many went in if the map refuses more.
    pub fn fill<'e, K: aya::Pod, V: aya::Pod>(
        &'e mut self,
        table: impl FnOnce(Loaded<'e>) -> Result<Write<'e, K, V>>,
        n: u32,
        key: impl Fn(u32) -> K,
        v: V,
    ) -> u32 {
        let mut m = table(Loaded::new(&mut self.ebpf)).expect("opening the table");
        for i in 0..n {
            if m.insert(key(i), v, 0).is_err() {
                return i;
            }
        }
        n
    }

    /// Drains the EVENTS ring buffer.
    /// Asks the data plane for the optional events of `kinds` (the agent
    /// does so in `agent::events::want`).
    pub fn want_events(&mut self, kinds: &[u32]) {
        let mut m = Loaded::new(&mut self.ebpf)
            .event_mask()
            .expect("EVENT_MASK");
        let bits = kinds.iter().fold(0u32, |b, k| b | 1 << k);
        m.set(0, bits, 0).expect("writing EVENT_MASK");
    }

    pub fn events(&mut self) -> Vec<EventRecord> {
        let mut ring = Loaded::new(&mut self.ebpf).events().expect("EVENTS");
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            let b: &[u8] = &item;
            assert!(b.len() >= 16, "EVENTS record of {} bytes", b.len());
            let word = |at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().unwrap());
            let end = (16 + EVENT_QUOTE_MAX).min(b.len());
            out.push(EventRecord {
                kind: word(0),
                quote_len: word(4),
                public_addr: word(8),
                limit: word(12),
                quote: b[16..end].to_vec(),
                record_len: b.len(),
            });
        }
        out
    }
}
