//! The expiry sweep's rules, table by table (root: it creates BPF maps).
//!
//! The agent's `Sweeper` runs on plain hash maps with the binding tables'
//! key and value layouts, pinned in a directory of their own, filled with
//! bindings in every state the rules tell apart, with more entries than
//! one sweep chunk so chunk boundaries are crossed. The sweep runs at a
//! chosen time; every table is then compared with what must be left.

use std::{
    collections::{BTreeMap, BTreeSet},
    mem::size_of,
    net::Ipv4Addr,
};

use nat_common::{
    EndpointKey, FilterKey, FirstSession, InsideEndpoint, MAP_FILTER, MAP_HOST_POOL,
    MAP_HOST_PORTS, MAP_INBOUND_SESSIONS, MAP_NAPT_IN, MAP_NAPT_OUT, MAP_SESSIONS, MAPPING_FORWARD,
    Mapping, NatConfig, SESSION_INBOUND, Session, SessionKey, TCP_ESTABLISHED, TCP_SYN_IN,
    TCP_SYN_OUT,
};
use nat_userspace::{
    agent::expiry::{ORPHAN_SCAN_INTERVAL_NS, Sweeper},
    tables::batch,
};
use xnat_tests::binding_tables::Tables;

const S: u64 = 1_000_000_000;
const UDP: u8 = 17;
const TCP: u8 = 6;
/// Bulk UDP bindings: more than one sweep chunk (4096 entries) in
/// NAPT_OUT, and (3 in 5 of them have a further session) in SESSIONS and
/// FILTER.
const BULK: u32 = 8000;
/// Inside hosts the bulk bindings are spread over.
const HOSTS: u32 = 50;

fn be(a: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(a.octets())
}

/// The binding tables of one test, with room for the bulk bindings.
fn tables() -> Tables {
    Tables::new("sweep-rules", 2 * BULK + 64)
}

/// The keys of table `name`, sorted.
fn keys<K: Copy + Default + Ord, V: Copy + Default>(t: &Tables, name: &str) -> BTreeSet<K> {
    t.entries::<K, V>(name)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

fn config() -> NatConfig {
    // The control plane's defaults (udp 300 s, tcp-established 7440 s,
    // tcp-transitory 240 s, icmp and tcp-syn-in 60 s), one pool address.
    NatConfig {
        pool_len: 1,
        max_ports_per_host: 100,
        ..xnat_tests::napt_maps::default_config()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Ep(u32, u16, u8);

fn ek(e: Ep) -> EndpointKey {
    EndpointKey {
        addr: e.0,
        port: e.1.to_be(),
        proto: e.2,
        _pad: 0,
    }
}

/// The whole state of one binding, to write and to expect.
struct Binding {
    inside: Ep,
    public: Ep,
    mapping_seen: u64,
    flags: u16,
    /// The first session, held in the mapping: (remote address, remote
    /// port, last seen, TCP bits).
    first: Option<(u32, u16, u64, u8)>,
    /// Sessions in SESSIONS: (remote address, remote port, last seen, TCP
    /// bits).
    sessions: Vec<(u32, u16, u64, u8)>,
    /// (remote address, last seen).
    filters: Vec<(u32, u64)>,
}

impl Binding {
    /// The `NAPT_OUT` value, with its first session live or (`first_live`
    /// false) its slot empty.
    fn mapping(&self, first_live: bool) -> Mapping {
        let first = match self.first {
            Some((ra, rp, seen, tcp)) if first_live => FirstSession {
                remote_addr: ra,
                remote_port: rp.to_be(),
                tcp,
                live: 1,
                last_seen: seen,
                packets_out: 3,
                packets_in: 2,
                bytes_out: 300,
                bytes_in: 200,
            },
            _ => FirstSession::default(),
        };
        Mapping {
            addr: self.public.0,
            port: self.public.1.to_be(),
            flags: self.flags,
            created: self.mapping_seen,
            last_seen: self.mapping_seen,
            first,
        }
    }

    fn write(&self, t: &Tables) {
        t.put(MAP_NAPT_OUT, ek(self.inside), self.mapping(true));
        let inside = InsideEndpoint {
            addr: self.inside.0,
            port: self.inside.1.to_be(),
            flags: self.flags,
        };
        t.put(MAP_NAPT_IN, ek(self.public), inside);
        for &(ra, rp, seen, tcp) in &self.sessions {
            t.put(
                MAP_SESSIONS,
                self.session_key(ra, rp),
                self.session(seen, tcp),
            );
        }
        for &(ra, seen) in &self.filters {
            t.put(MAP_FILTER, self.filter_key(ra), seen);
        }
    }

    fn session_key(&self, ra: u32, rp: u16) -> SessionKey {
        SessionKey {
            inside_addr: self.inside.0,
            remote_addr: ra,
            inside_port: self.inside.1.to_be(),
            remote_port: rp.to_be(),
            proto: self.inside.2,
            _pad: [0; 3],
        }
    }

    fn session(&self, seen: u64, tcp: u8) -> Session {
        Session {
            created: seen,
            last_seen: seen,
            public_addr: self.public.0,
            public_port: self.public.1.to_be(),
            tcp,
            ..Default::default()
        }
    }

    fn filter_key(&self, ra: u32) -> FilterKey {
        FilterKey {
            public_addr: self.public.0,
            remote_addr: ra,
            public_port: self.public.1.to_be(),
            proto: self.inside.2,
            _pad: 0,
        }
    }
}

/// A binding and what the sweep must leave of it.
struct Case {
    b: Binding,
    /// The mapping (both entries).
    keep_mapping: bool,
    /// The first session (if any) stays live; else its slot is emptied
    /// (when the mapping stays).
    keep_first: bool,
    /// Each SESSIONS entry, in order.
    keep_sessions: Vec<bool>,
    /// Each FILTER entry, in order.
    keep_filters: Vec<bool>,
}

// Ord for the key types, so the tables compare as sorted sets.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct SK([u8; 16]);
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct EK([u8; 8]);
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct FK([u8; 12]);

fn bytes<T: Copy, const N: usize>(v: T) -> [u8; N] {
    assert_eq!(size_of::<T>(), N);
    // SAFETY: T is a #[repr(C)] plain-data map key of exactly N bytes with
    // explicit padding.
    unsafe { std::mem::transmute_copy(&v) }
}

/// The sweep sets `INBOUND_SESSIONS` to the live sessions that inbound
/// packets created (expired ones and outbound ones not counted), whatever
/// the data plane's count had drifted to.
#[test]
fn sweep_recounts_inbound_sessions() {
    let t = tables();
    let now = 100_000 * S;
    let (fresh, old) = (now - 10 * S, now - 1000 * S);
    t.put(MAP_INBOUND_SESSIONS, 0u32, 12345u64);
    let inside = be(Ipv4Addr::new(10, 1, 0, 1));
    let sessions = [
        (1, TCP_ESTABLISHED, fresh, SESSION_INBOUND),
        (2, TCP_ESTABLISHED, fresh, SESSION_INBOUND),
        // A SYN from outside never answered: past tcp-syn-in (60 s).
        (3, TCP_SYN_IN, old, SESSION_INBOUND),
        (4, TCP_ESTABLISHED, fresh, 0),
    ];
    for (i, tcp, seen, flags) in sessions {
        let key = SessionKey {
            inside_addr: inside,
            remote_addr: be(Ipv4Addr::new(203, 0, 113, i)),
            inside_port: 80u16.to_be(),
            remote_port: 50000u16.to_be(),
            proto: TCP,
            _pad: [0; 3],
        };
        let s = Session {
            created: seen,
            last_seen: seen,
            tcp,
            flags,
            ..Default::default()
        };
        t.put(MAP_SESSIONS, key, s);
    }
    let r = Sweeper::open(t.dir())
        .unwrap()
        .sweep(&config(), now)
        .unwrap();
    assert_eq!(r.sessions_expired, 1);
    let n: u64 = batch::lookup_all::<u32, u64>(t.fd(MAP_INBOUND_SESSIONS))
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(n, 2, "INBOUND_SESSIONS after the sweep");
}

/// `HOST_POOL` entries go once their host has held no dynamic mapping at
/// two sweeps in a row (a host with a mapping, or one whose entry the
/// data plane may have written just before its first mapping, keeps it).
#[test]
fn sweep_forgets_pool_addresses_of_unbound_hosts() {
    let t = tables();
    let now = 100_000 * S;
    let pool = be(Ipv4Addr::new(198, 51, 100, 1));
    let (bound, unbound) = (
        be(Ipv4Addr::new(10, 1, 0, 1)),
        be(Ipv4Addr::new(10, 1, 0, 2)),
    );
    for h in [bound, unbound] {
        t.put(MAP_HOST_POOL, h, pool);
    }
    let inside = EndpointKey {
        addr: bound,
        port: 5000u16.to_be(),
        proto: UDP,
        _pad: 0,
    };
    let m = Mapping {
        addr: pool,
        port: 5000u16.to_be(),
        created: now,
        last_seen: now,
        ..Default::default()
    };
    t.put(MAP_NAPT_OUT, inside, m);
    let sweeper = Sweeper::open(t.dir()).unwrap();
    let hosts = || -> BTreeSet<u32> {
        batch::lookup_all::<u32, u32>(t.fd(MAP_HOST_POOL))
            .unwrap()
            .into_iter()
            .map(|(h, _)| h)
            .collect()
    };
    sweeper.sweep(&config(), now).unwrap();
    assert_eq!(hosts(), BTreeSet::from([bound, unbound]), "after one sweep");
    sweeper.sweep(&config(), now).unwrap();
    assert_eq!(hosts(), BTreeSet::from([bound]), "after two sweeps");
}

#[test]
fn sweep_applies_every_rule_across_chunks() {
    every_rule_across_chunks(tables(), config(), false);
}

/// The same rules, with the walk over the mappings in the kernel (xnat's
/// own maps and `xnat_expire`; no per-host cap, so nothing else needs the
/// mappings listed).
#[test]
fn sweep_in_the_kernel_applies_every_rule_across_chunks() {
    let t = Tables::with_kernel_walk("sweep-rules-kernel", 2 * BULK + 64);
    let cfg = NatConfig {
        max_ports_per_host: 0,
        ..config()
    };
    every_rule_across_chunks(t, cfg, true);
}

/// Fills `t` with bindings in every state the rules tell apart, sweeps
/// with `cfg` and checks what is left; `in_kernel`: whether the sweep
/// walks the mappings in the kernel (then it lists none, and keeps no
/// per-host counts).
fn every_rule_across_chunks(t: Tables, cfg: NatConfig, in_kernel: bool) {
    let now = 100_000 * S;
    let sweeper = Sweeper::open(t.dir()).unwrap().walking_in_kernel(in_kernel);
    let fresh = now - 10 * S;
    let old = now - 1000 * S; // past UDP (300) and TCP transitory (240)
    let pool = be(Ipv4Addr::new(198, 51, 100, 1));
    let remote = |i: u32| be(Ipv4Addr::new(203, 0, 113, (i % 200) as u8 + 1));
    let remote2 = |i: u32| be(Ipv4Addr::new(203, 0, 114, (i % 200) as u8 + 1));
    let host = |i: u32| be(Ipv4Addr::new(10, 1, 0, (i % HOSTS) as u8 + 1));

    let mut all: Vec<Case> = Vec::new();
    for k in 0..BULK {
        let inside = Ep(host(k), 20000 + (k / HOSTS) as u16, UDP);
        let public = Ep(pool, 1024 + k as u16, UDP);
        let (r, r2) = (remote(k), remote2(k));
        let (first, sessions, filters, mapping_seen, keep) = match k % 5 {
            // The usual binding: its one session, in use, held in the
            // mapping. Everything stays.
            0 => (
                (r, 53, fresh),
                vec![],
                vec![],
                fresh,
                (true, true, vec![], vec![]),
            ),
            // The usual binding, idle past its timeout: the first session
            // expires, nothing else lives: the mapping goes.
            1 => (
                (r, 53, old),
                vec![],
                vec![],
                old,
                (false, false, vec![], vec![]),
            ),
            // First session idle, a further one in use: the first's slot
            // is emptied, the mapping stays with the other session and its
            // filter entry.
            2 => (
                (r, 53, old),
                vec![(r2, 53, fresh, 0)],
                vec![(r2, fresh)],
                fresh,
                (true, false, vec![true], vec![true]),
            ),
            // First session in use, a further one idle: that one goes with
            // its idle filter entry; the mapping and its first stay.
            3 => (
                (r, 53, fresh),
                vec![(r2, 53, old, 0)],
                vec![(r2, old)],
                fresh,
                (true, true, vec![false], vec![false]),
            ),
            // Everything idle: all goes.
            _ => (
                (r, 53, old),
                vec![(r2, 53, old, 0)],
                vec![(r2, old)],
                old,
                (false, false, vec![false], vec![false]),
            ),
        };
        all.push(Case {
            b: Binding {
                inside,
                public,
                mapping_seen,
                flags: 0,
                first: Some((first.0, first.1, first.2, 0)),
                sessions,
                filters,
            },
            keep_mapping: keep.0,
            keep_first: keep.1,
            keep_sessions: keep.2,
            keep_filters: keep.3,
        });
    }
    let h = be(Ipv4Addr::new(10, 2, 0, 1));
    let established = TCP_ESTABLISHED;
    let (r1, r2, r3) = (remote(7), remote(8), remote(9));
    let mut special = |inside: Ep,
                       mapping_seen: u64,
                       flags: u16,
                       first: Option<(u32, u16, u64, u8)>,
                       sessions: Vec<(u32, u16, u64, u8)>,
                       filters: Vec<(u32, u64)>,
                       keep_mapping: bool,
                       keep_first: bool,
                       keep_sessions: Vec<bool>,
                       keep_filters: Vec<bool>| {
        let public = Ep(pool, if flags != 0 { 8080 } else { inside.1 }, inside.2);
        all.push(Case {
            b: Binding {
                inside,
                public,
                mapping_seen,
                flags,
                first,
                sessions,
                filters,
            },
            keep_mapping,
            keep_first,
            keep_sessions,
            keep_filters,
        });
    };
    // A port forward (no first session): never expires, however idle; its
    // idle session goes, and its idle filter entry with no session.
    special(
        Ep(h, 80, TCP),
        old,
        MAPPING_FORWARD,
        None,
        vec![(r2, 50000, old, TCP_SYN_IN)],
        vec![(r1, old)],
        true,
        false,
        vec![false],
        vec![false],
    );
    // An established TCP connection idle for 1000 s (< 7440), the
    // mapping's first session: it stays, so its mapping stays although
    // idle past its own timeout (240), and so does a filter entry for its
    // remote address however idle (left by a session to another port of
    // it, gone); the idle filter entry for another address, with no
    // session, goes.
    special(
        Ep(h, 40000, TCP),
        old,
        0,
        Some((r1, 443, old, established)),
        vec![(r1, 8443, old, TCP_SYN_OUT)],
        vec![(r1, old), (r2, old)],
        true,
        true,
        vec![false],
        vec![true, false],
    );
    // A transitory first session idle past 240 s, the mapping idle past
    // its timeout too, but an established session in SESSIONS still lives
    // (idle 1000 s): the first's slot is emptied, the mapping stays with
    // the other session and that session's filter entry.
    special(
        Ep(h, 40001, TCP),
        old,
        0,
        Some((r1, 443, old, TCP_SYN_OUT)),
        vec![(r3, 443, old, established)],
        vec![(r3, old)],
        true,
        false,
        vec![true],
        vec![true],
    );
    // No session left (the first slot emptied by an earlier sweep) but
    // the mapping itself recently used: it stays, and its fresh filter
    // entry with it.
    special(
        Ep(h, 40002, UDP),
        fresh,
        0,
        None,
        vec![],
        vec![(r2, fresh)],
        true,
        false,
        vec![],
        vec![true],
    );
    // The same, the mapping idle: it goes.
    special(
        Ep(h, 40004, UDP),
        old,
        0,
        None,
        vec![],
        vec![],
        false,
        false,
        vec![],
        vec![],
    );
    // A first session expired, the mapping recently used (by a session
    // since expired too): the slot is emptied, the mapping stays; the
    // other session goes, its filter entry (fresh) stays.
    special(
        Ep(h, 40003, UDP),
        fresh,
        0,
        Some((r1, 53, old, 0)),
        vec![(r2, 53, old, 0)],
        vec![(r2, fresh)],
        true,
        false,
        vec![false],
        vec![true],
    );
    for c in &all {
        c.b.write(&t);
    }
    // A fresh filter entry whose mapping does not exist, and a host count
    // for a host holding nothing: both go.
    let orphan = FilterKey {
        public_addr: pool,
        remote_addr: r3,
        public_port: 39999u16.to_be(),
        proto: UDP,
        _pad: 0,
    };
    t.put(MAP_FILTER, orphan, fresh);
    let nobody = be(Ipv4Addr::new(10, 3, 0, 1));
    t.put(MAP_HOST_PORTS, nobody, 5u64);
    // A stale count for a host that holds ports: corrected.
    t.put(MAP_HOST_PORTS, host(0), 1u64);

    let mut want_s = BTreeSet::new();
    let mut want_out: BTreeMap<EK, Mapping> = BTreeMap::new();
    let mut want_in = BTreeSet::new();
    let mut want_f = BTreeSet::new();
    let mut want_hosts: BTreeMap<u32, u64> = BTreeMap::new();
    let (mut n_s, mut n_m, mut gone_s, mut gone_m) = (0, 0, 0, 0);
    for c in &all {
        let b = &c.b;
        n_m += 1;
        if b.first.is_some() {
            n_s += 1;
            if !c.keep_first {
                gone_s += 1;
            }
        }
        if c.keep_mapping {
            want_out.insert(EK(bytes(ek(b.inside))), b.mapping(c.keep_first));
            want_in.insert(EK(bytes(ek(b.public))));
            if b.flags & MAPPING_FORWARD == 0 {
                *want_hosts.entry(b.inside.0).or_default() += 1;
            }
        } else {
            assert!(!c.keep_first, "a first session outlives its mapping");
            gone_m += 1;
        }
        for (s, keep) in b.sessions.iter().zip(&c.keep_sessions) {
            n_s += 1;
            if *keep {
                want_s.insert(SK(bytes(b.session_key(s.0, s.1))));
            } else {
                gone_s += 1;
            }
        }
        for (f, keep) in b.filters.iter().zip(&c.keep_filters) {
            if *keep {
                want_f.insert(FK(bytes(b.filter_key(f.0))));
            }
        }
    }
    // Every table holds more than one sweep chunk.
    let written = |f: fn(&Binding) -> usize| all.iter().map(|c| f(&c.b)).sum::<usize>();
    assert!(written(|b| b.sessions.len()) > 4096);
    assert!(written(|b| b.filters.len()) > 4096);
    assert!(all.len() > 4096);

    let r = sweeper.sweep(&cfg, now).unwrap();
    assert_eq!(r.in_kernel, in_kernel, "where the mappings were walked");
    assert_eq!(
        r.sessions_seen, n_s,
        "sessions seen (first sessions included)"
    );
    assert_eq!(r.mappings_seen, n_m);
    assert_eq!(
        r.sessions_expired, gone_s,
        "sessions expired (first sessions included)"
    );
    assert_eq!(r.mappings_expired, gone_m);
    if !in_kernel {
        assert_eq!(r.expired.len(), gone_m);
        assert_eq!(r.remaining.len(), n_m - gone_m);
    }

    let got_s: BTreeSet<SK> = keys::<SK, Session>(&t, MAP_SESSIONS);
    let got_out: BTreeMap<EK, Mapping> = batch::lookup_all::<EK, Mapping>(t.fd(MAP_NAPT_OUT))
        .unwrap()
        .into_iter()
        .collect();
    let got_in: BTreeSet<EK> = keys::<EK, InsideEndpoint>(&t, MAP_NAPT_IN);
    let got_f: BTreeSet<FK> = keys::<FK, u64>(&t, MAP_FILTER);
    assert!(
        got_s == want_s,
        "SESSIONS: {} left, {} expected",
        got_s.len(),
        want_s.len()
    );
    assert!(
        got_out.keys().eq(want_out.keys()),
        "NAPT_OUT: {} left, {} expected",
        got_out.len(),
        want_out.len()
    );
    for (k, want) in &want_out {
        assert_eq!(
            &got_out[k], want,
            "NAPT_OUT value of {k:?} (first session emptied iff it expired)"
        );
    }
    assert!(
        got_in == want_in,
        "NAPT_IN: {} left, {} expected",
        got_in.len(),
        want_in.len()
    );
    assert!(
        got_f == want_f,
        "FILTER: {} left, {} expected",
        got_f.len(),
        want_f.len()
    );
    let hosts: BTreeMap<u32, u64> = batch::lookup_all::<u32, u64>(t.fd(MAP_HOST_PORTS))
        .unwrap()
        .into_iter()
        .collect();
    if in_kernel {
        // No cap: nobody counts.
        assert_eq!(hosts, BTreeMap::from([(nobody, 5), (host(0), 1)]));
    } else {
        assert_eq!(
            hosts, want_hosts,
            "HOST_PORTS: recounted from the mappings left"
        );
    }

    // A second sweep at the same time finds nothing more to do (emptied
    // first slots are no sessions).
    let r = sweeper.sweep(&cfg, now).unwrap();
    assert_eq!(r.in_kernel, in_kernel);
    assert_eq!(
        (r.sessions_expired, r.mappings_expired, r.filters_expired),
        (0, 0, 0)
    );
    let live_firsts = all
        .iter()
        .filter(|c| c.b.first.is_some() && c.keep_first)
        .count();
    assert_eq!(r.sessions_seen, want_s.len() + live_firsts);
    assert_eq!(keys::<FK, u64>(&t, MAP_FILTER), want_f);

    // A day later everything but the forward is gone.
    let r = sweeper.sweep(&cfg, now + 86_400 * S).unwrap();
    assert_eq!(r.mappings_expired, n_m - gone_m - 1);
    assert_eq!(r.sessions_expired, want_s.len() + live_firsts);
    assert!(keys::<SK, Session>(&t, MAP_SESSIONS).is_empty());
    assert!(keys::<FK, u64>(&t, MAP_FILTER).is_empty());
    assert_eq!(keys::<EK, Mapping>(&t, MAP_NAPT_OUT).len(), 1);
    assert_eq!(keys::<EK, InsideEndpoint>(&t, MAP_NAPT_IN).len(), 1);
}

/// The `NAPT_IN` value naming inside endpoint `e`.
fn names(e: Ep) -> InsideEndpoint {
    InsideEndpoint {
        addr: e.0,
        port: e.1.to_be(),
        flags: 0,
    }
}

/// NAPT_IN entries that no mapping points to go, but only once two orphan
/// scans (a minute apart, the first a minute after the sweeper's first
/// sweep; 3 × 60 s is within every timeout here, so nothing expires)
/// found them so: an entry whose mapping is still
/// being made (NAPT_IN first, then NAPT_OUT) must survive.
#[test]
fn sweep_removes_orphaned_inbound_entries_seen_twice() {
    let t = Tables::new("sweep-orphans", 64);
    let t0 = 100_000 * S;
    let pool = be(Ipv4Addr::new(198, 51, 100, 1));
    let host = |i: u8| be(Ipv4Addr::new(10, 1, 0, i));
    let public = |port: u16| Ep(pool, port, UDP);
    let inside = |i: u8| Ep(host(i), 5000, UDP);
    let put_mapping = |from: Ep, to: Ep| {
        let b = Binding {
            inside: from,
            public: to,
            mapping_seen: t0,
            flags: 0,
            first: Some((be(Ipv4Addr::new(203, 0, 113, 1)), 53, t0, 0)),
            sessions: vec![],
            filters: vec![],
        };
        t.put(MAP_NAPT_OUT, ek(from), b.mapping(true));
    };
    let bind = |from: Ep, to: Ep| {
        put_mapping(from, to);
        t.put(MAP_NAPT_IN, ek(to), names(from));
    };
    let inbound = || -> BTreeMap<EK, (u32, u16)> {
        t.entries::<EK, InsideEndpoint>(MAP_NAPT_IN)
            .into_iter()
            .map(|(k, v)| (k, (v.addr, u16::from_be(v.port))))
            .collect()
    };
    let has = |k: Ep| inbound().contains_key(&EK(bytes(ek(k))));

    // A whole binding: stays throughout.
    bind(inside(1), public(2001));
    // An orphan: nothing in NAPT_OUT for its inside endpoint.
    t.put(MAP_NAPT_IN, ek(public(2002)), names(inside(2)));
    // An orphan whose inside endpoint has a mapping, to another public
    // endpoint (which stays).
    bind(inside(3), public(2004));
    t.put(MAP_NAPT_IN, ek(public(2003)), names(inside(3)));
    // A mapping being made: the reservation is in, NAPT_OUT not yet.
    t.put(MAP_NAPT_IN, ek(public(2005)), names(inside(5)));
    // An orphan that will be re-pointed to another inside endpoint before
    // the second scan (still an orphan, but not the same one).
    t.put(MAP_NAPT_IN, ek(public(2006)), names(inside(6)));

    let sweeper = Sweeper::open(t.dir()).unwrap();
    // A sweeper's first sweep does not scan: it starts the clock.
    let r = sweeper
        .sweep(&config(), t0 - ORPHAN_SCAN_INTERVAL_NS)
        .unwrap();
    assert_eq!(r.orphans_removed, 0);
    let r = sweeper.sweep(&config(), t0).unwrap();
    assert_eq!(r.orphans_removed, 0, "the first scan only takes note");
    assert_eq!(inbound().len(), 6);

    // The mapping being made is complete; the orphan is re-pointed; a new
    // orphan appears.
    put_mapping(inside(5), public(2005));
    t.put(MAP_NAPT_IN, ek(public(2006)), names(inside(7)));
    t.put(MAP_NAPT_IN, ek(public(2008)), names(inside(8)));

    // A sweep within the minute does not scan.
    let r = sweeper.sweep(&config(), t0 + S).unwrap();
    assert_eq!(r.orphans_removed, 0, "no scan a second after the last");
    assert_eq!(inbound().len(), 7);

    let second_scan = t0 + ORPHAN_SCAN_INTERVAL_NS;
    let r = sweeper.sweep(&config(), second_scan).unwrap();
    assert_eq!(r.orphans_removed, 2, "the two orphans seen by both scans");
    assert!(!has(public(2002)), "orphan without a mapping");
    assert!(!has(public(2003)), "orphan of a host mapped elsewhere");
    for (k, what) in [
        (public(2001), "a whole binding"),
        (public(2004), "a whole binding"),
        (public(2005), "a mapping that was being made"),
        (public(2006), "an orphan re-pointed since the last scan"),
        (public(2008), "an orphan new since the last scan"),
    ] {
        assert!(has(k), "{what} ({k:?}) must stay");
    }
    assert_eq!(t.entries::<EK, Mapping>(MAP_NAPT_OUT).len(), 3);

    let r = sweeper
        .sweep(&config(), second_scan + ORPHAN_SCAN_INTERVAL_NS)
        .unwrap();
    assert_eq!(r.orphans_removed, 2);
    let left: BTreeSet<EK> = inbound().into_keys().collect();
    let want: BTreeSet<EK> = [public(2001), public(2004), public(2005)]
        .into_iter()
        .map(|k| EK(bytes(ek(k))))
        .collect();
    assert_eq!(left, want, "only the bindings' entries are left");
}

/// With NAT64's host prefix (/64), the sweep counts the mappings of the
/// IPv6 hosts of one /64 on the `HOST_PORTS` entry of the stand-in of the
/// /64's own address (the cap key the data plane reserved), whatever the
/// counts had drifted to; a host whose prefix has no stand-in counts on
/// its own; with /128 each stand-in counts alone. The stand-in scan keeps
/// a prefix's key while a host of the prefix holds a mapping, though no
/// mapping names it, and frees it (seen unused by two scans) once none
/// does.
#[test]
fn sweep_counts_nat64_hosts_per_prefix() {
    use nat_common::nat64::{
        MAP_NAT64, MAP_NAT64_HOSTS, MAP_NAT64_IDS, Nat64Config, Nat64Host, WELL_KNOWN_PREFIX,
        stand_in,
    };
    let t = Tables::new("sweep-caps", 64);
    let t0 = 100_000 * S;
    let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let (sa, sb, key, sc) = (stand_in(1), stand_in(2), stand_in(3), stand_in(4));
    for (s, host) in [
        (sa, "2001:db8:1::a"),
        (sb, "2001:db8:1::b"),
        (key, "2001:db8:1::"),
        (sc, "2001:db8:2::c"),
    ] {
        let h = Nat64Host {
            addr: v6(host),
            created: 0,
        };
        t.put(MAP_NAT64_IDS, s, h);
        t.put(MAP_NAT64_HOSTS, h.addr, s);
    }
    let host_prefix = |len: u8| {
        let c = Nat64Config {
            host_prefix: len,
            ..Nat64Config::new(WELL_KNOWN_PREFIX, 96).unwrap()
        };
        t.put(MAP_NAT64, 0u32, c);
    };
    host_prefix(64);
    let pool = be(Ipv4Addr::new(198, 51, 100, 1));
    let inside = |s: u32, port: u16| EndpointKey {
        addr: s,
        port: port.to_be(),
        proto: UDP,
        _pad: 0,
    };
    let mappings = [
        inside(sa, 6000),
        inside(sa, 6001),
        inside(sb, 6002),
        inside(sc, 6003),
    ];
    for k in mappings {
        let m = Mapping {
            addr: pool,
            port: k.port,
            created: t0,
            last_seen: t0,
            ..Default::default()
        };
        t.put(MAP_NAPT_OUT, k, m);
    }
    // Drifted counts: the key's too high, a stale one for host A alone.
    t.put(MAP_HOST_PORTS, key, 7u64);
    t.put(MAP_HOST_PORTS, sa, 3u64);
    let counts = || -> BTreeMap<u32, u64> { t.entries(MAP_HOST_PORTS).into_iter().collect() };
    let ids = || -> BTreeSet<u32> { keys::<u32, Nat64Host>(&t, MAP_NAT64_IDS) };

    let sweeper = Sweeper::open(t.dir()).unwrap();
    sweeper
        .sweep(&config(), t0 - ORPHAN_SCAN_INTERVAL_NS)
        .unwrap();
    assert_eq!(
        counts(),
        BTreeMap::from([(key, 3), (sc, 1)]),
        "HOST_PORTS per /64: A and B on the /64's key, C (no key) alone"
    );
    // Two scans: the key stays with A and B bound.
    sweeper.sweep(&config(), t0).unwrap();
    let r = sweeper
        .sweep(&config(), t0 + ORPHAN_SCAN_INTERVAL_NS)
        .unwrap();
    assert_eq!(r.stand_ins_freed, 0, "the /64's key is in use");
    assert_eq!(ids(), BTreeSet::from([sa, sb, key, sc]));

    // Each address alone.
    host_prefix(128);
    sweeper
        .sweep(&config(), t0 + ORPHAN_SCAN_INTERVAL_NS + S)
        .unwrap();
    assert_eq!(
        counts(),
        BTreeMap::from([(sa, 2), (sb, 1), (sc, 1)]),
        "HOST_PORTS per /128"
    );

    // Per /64 again, A and B unbound: their stand-ins and the key go.
    host_prefix(64);
    for k in &mappings[..3] {
        t.remove(MAP_NAPT_OUT, *k);
    }
    let mut freed = 0;
    for i in 2..4 {
        freed += sweeper
            .sweep(&config(), t0 + i * ORPHAN_SCAN_INTERVAL_NS)
            .unwrap()
            .stand_ins_freed;
    }
    assert_eq!(freed, 3, "A's, B's and the /64's stand-ins");
    assert_eq!(ids(), BTreeSet::from([sc]));
    assert_eq!(counts(), BTreeMap::from([(sc, 1)]));
}
