//! Packet tests (BPF_PROG_TEST_RUN) of hairpinning and IPv4 fragments
//! (issue 7): frames built from scratch run through the compiled programs
//! with prepared maps; every output byte and checksum is compared with a
//! frame built from scratch with the expected translation.
//!
//! Hairpinning runs `xnat_inside_tc`, which translates both ways and then
//! forwards with `bpf_fib_lookup` + `bpf_redirect`/`bpf_redirect_neigh`.
//! The lookup uses the routing table of the network namespace the test run
//! happens in, so those tests run from a thread inside a scratch namespace
//! ([`FibNs`]) holding the gateway's inside interfaces, their routes and
//! permanent neighbour entries, with forwarding on, and pass the inside
//! interface as the packet's ingress device (`__sk_buff.ifindex`). The run
//! does not transmit anything: `bpf_redirect` only returns
//! `TC_ACT_REDIRECT`, and the frame the program leaves behind (MAC addresses
//! from the FIB and neighbour table, TTL decremented, translated both ways)
//! is compared byte for byte. Without a route the lookup fails and the
//! program drops the packet (`TC_ACT_SHOT`) — after translating it, which
//! [`hairpin_without_a_route_is_dropped_after_translation`] documents: a
//! packet the gateway cannot forward is never passed up half-translated.
//!
//! Fragments run through the egress program and both ingress programs: the
//! first fragment decides the binding and is remembered in `FRAGS_OUT` or
//! `FRAGS_IN` (by direction); later
//! fragments get the same address translation; unknown later fragments are
//! dropped outbound (or held, TC) and passed inbound; entries older than
//! 30 s are ignored.
//!
//! Every test loads its own instance of the object (its own maps), so the
//! tests may run in parallel.

use std::net::Ipv4Addr;

use anyhow::{Context as _, Result, anyhow};
use aya::Ebpf;
use aya::maps::IterableMap as _;
use aya::maps::lpm_trie::Key as LpmKey;
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};
use nat_common::stats::COUNTER_COUNT;
use nat_common::{
    Counter, FRAG_TIMEOUT_NS, FragKey, FragValue, MAP_FRAG_HOLD_IN, MAP_FRAG_HOLD_OUT,
    MAPPING_FORWARD, Mapping, PROG_EGRESS_TC, PROG_INGRESS_TC, PROG_INGRESS_XDP, PROG_INSIDE_TC,
    Session, SessionKey,
};
use nat_userspace::settings::napt::Filtering;
use nat_userspace::tables::usage::usage;
use nat_userspace::tables::{Loaded, LoadedRef};
use xnat_tests::bpf::{self, Hook, Outcome, Read, TC_ACT_OK, TC_ACT_SHOT, Write, require_root};
use xnat_tests::frame::{
    self, ETH_HLEN, Icmp, Packet, Tcp, Udp, assert_frame_eq, check_checksums, icmp, proto,
    tcp_flags,
};
use xnat_tests::napt_maps::{
    Endpoint, be, clock_window, dataplane_now_ns, default_config, filter_key, first_as_session,
    first_session, inside_key, session_key,
};
use xnat_tests::netns::Netns;

const TC_ACT_REDIRECT: u32 = 7;
/// TC_ACT_STOLEN: what a program may return for a fragment it keeps.
const TC_ACT_STOLEN: u32 = 4;

/// Inside hosts behind the first inside interface.
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
/// Statically mapped to [`PUB_E`].
const E: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
/// Behind the second inside interface, statically mapped to [`PUB_C`].
const C: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
/// A statically mapped host for the fragment tests.
const S: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
const PUB_C: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const PUB_E: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 3);
const PUB_S: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
/// The pool (one address).
const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// Servers on the outside.
const SRV: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SRV2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);

/// MAC addresses in the scratch namespace.
const MAC_IN0: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
const MAC_IN1: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x01];
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x02];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x03];
const MAC_E: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x04];
const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x02];

const UDP: u8 = proto::UDP;
const TCP: u8 = proto::TCP;
const ICMP: u8 = proto::ICMP;

// ---------------------------------------------------------------- loader

/// Which program a frame runs through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prog {
    Hook(Hook),
    /// `xnat_inside_tc` (TC ingress of the inside interfaces).
    Inside,
}

/// One loaded instance of xnat's BPF object with the programs a test runs,
/// NAPT on with the pool [`POOL`] and inside prefix 10.0.0.0/8.
struct Hp {
    ebpf: Ebpf,
}

/// The programs of the fragment tests (the external interface's).
const EXTERNAL: &[&str] = &[PROG_INGRESS_XDP, PROG_INGRESS_TC, PROG_EGRESS_TC];
/// The program of the hairpin tests.
const INSIDE: &[&str] = &[PROG_INSIDE_TC];

impl Hp {
    /// The external interface's programs (the verifier takes a while over
    /// each program: load only what a test runs).
    fn new(filtering: Filtering) -> Hp {
        Self::with_progs(filtering, EXTERNAL)
    }

    /// The inside interfaces' program.
    fn inside(filtering: Filtering) -> Hp {
        Self::with_progs(filtering, INSIDE)
    }

    fn with_progs(filtering: Filtering, progs: &[&str]) -> Hp {
        require_root();
        let mut hp =
            Self::try_load(progs).unwrap_or_else(|e| panic!("loading xnat's BPF object: {e:#}"));
        let mut cfg = default_config();
        cfg.filtering = filtering.code();
        cfg.pool_len = 1;
        {
            let mut a = Loaded::new(&mut hp.ebpf).config().unwrap();
            a.set(0, cfg, 0).expect("CONFIG");
        }
        {
            let mut a = Loaded::new(&mut hp.ebpf).pool().unwrap();
            a.set(0, be(POOL), 0).expect("POOL");
        }
        {
            let mut t = Loaded::new(&mut hp.ebpf).internal().unwrap();
            t.insert(&LpmKey::new(8, be(Ipv4Addr::new(10, 0, 0, 0))), 1, 0)
                .expect("INTERNAL");
        }
        hp
    }

    fn try_load(progs: &[&str]) -> Result<Hp> {
        let mut ebpf = aya::EbpfLoader::new()
            .load(nat_userspace::ebpf_object())
            .context("EbpfLoader::load")?;
        if progs.contains(&PROG_INGRESS_XDP) {
            let prog: &mut Xdp = ebpf
                .program_mut(PROG_INGRESS_XDP)
                .ok_or_else(|| anyhow!("no program {PROG_INGRESS_XDP}"))?
                .try_into()?;
            prog.load()
                .with_context(|| format!("loading {PROG_INGRESS_XDP}"))?;
        }
        for &name in progs.iter().filter(|n| **n != PROG_INGRESS_XDP) {
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("no program {name}"))?
                .try_into()?;
            prog.load().with_context(|| format!("loading {name}"))?;
        }
        Ok(Hp { ebpf })
    }

    /// Runs `frame` through `prog` once, with `ctx` as the `__sk_buff`
    /// (TC programs only).
    fn run_ctx(&self, prog: Prog, frame: &[u8], ctx: Option<&[u8]>) -> Outcome {
        let name = match prog {
            Prog::Hook(h) => h.program_name(),
            Prog::Inside => PROG_INSIDE_TC,
        };
        let p = self.ebpf.program(name).expect(name);
        let mut out = vec![0u8; frame.len() + 512];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: ctx,
            repeat: 1,
            ..Default::default()
        };
        let res = match prog {
            Prog::Hook(Hook::IngressXdp) => <&Xdp>::try_from(p).unwrap().test_run(opts),
            _ => <&SchedClassifier>::try_from(p).unwrap().test_run(opts),
        }
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN of {name}: {e}"));
        out.truncate(res.data_size_out as usize);
        Outcome {
            verdict: res.return_value,
            data: out,
        }
    }

    fn run(&self, prog: Prog, frame: &[u8]) -> Outcome {
        self.run_ctx(prog, frame, None)
    }

    fn run_hook(&self, hook: Hook, frame: &[u8]) -> Outcome {
        self.run(Prog::Hook(hook), frame)
    }

    // ---- counters

    fn counters(&self) -> [u64; COUNTER_COUNT as usize] {
        let stats = LoadedRef::new(&self.ebpf).stats().unwrap();
        let mut all = [0u64; COUNTER_COUNT as usize];
        for c in Counter::ALL {
            all[c as usize] = stats.get(&(c as u32), 0).expect("STATS").iter().sum();
        }
        all
    }

    fn counter(&self, c: Counter) -> u64 {
        self.counters()[c as usize]
    }

    /// A counter by its `xnat stats` name; 0 if this build has none.
    fn counter_named(&self, name: &str) -> u64 {
        let all = self.counters();
        Counter::ALL
            .iter()
            .find(|c| c.name() == name)
            .map(|c| all[*c as usize])
            .unwrap_or(0)
    }

    // ---- maps

    fn put<'e, K: aya::Pod, V: aya::Pod>(
        &'e mut self,
        table: impl FnOnce(Loaded<'e>) -> Result<Write<'e, K, V>>,
        k: K,
        v: V,
    ) {
        bpf::put(&mut self.ebpf, table, k, v);
    }

    fn get<'e, K: aya::Pod, V: aya::Pod>(
        &'e self,
        table: impl FnOnce(&LoadedRef<'e>) -> Result<Read<'e, K, V>>,
        k: &K,
    ) -> Option<V> {
        bpf::get(&self.ebpf, table, k)
    }

    fn add_static(&mut self, private: Ipv4Addr, public: Ipv4Addr) {
        self.put(Loaded::static_out, be(private), be(public));
        self.put(Loaded::static_in, be(public), be(private));
    }

    /// A mapping pair `inside <-> public` (both directions), without a
    /// first session.
    fn add_mapping(&mut self, inside: Endpoint, public: Endpoint, flags: u16) {
        let now = dataplane_now_ns();
        self.put(
            Loaded::napt_out,
            inside.key(),
            public.as_mapping(flags, now, now),
        );
        self.put(Loaded::napt_in, public.key(), inside.as_inside(flags));
    }

    /// Gives the mapping of `inside` a live first session with `remote`,
    /// as if its first packet had gone there.
    fn set_first(&mut self, inside: Endpoint, remote: (Ipv4Addr, u16)) {
        let mut m = self.napt_out(inside).expect("no mapping");
        m.first = first_session(remote, dataplane_now_ns(), 0);
        self.put(Loaded::napt_out, inside.key(), m);
    }

    fn napt_out(&self, inside: Endpoint) -> Option<Mapping> {
        self.get(LoadedRef::napt_out, &inside.key())
    }

    fn napt_out_len(&self) -> usize {
        LoadedRef::new(&self.ebpf)
            .napt_out()
            .expect("NAPT_OUT")
            .keys()
            .count()
    }

    /// Session `k`, wherever it is held (its mapping's first session, or
    /// SESSIONS).
    fn session(&self, k: &SessionKey) -> Option<Session> {
        let m: Option<Mapping> = self.get(LoadedRef::napt_out, &inside_key(k));
        m.and_then(|m| first_as_session(&m, k))
            .or_else(|| self.get(LoadedRef::sessions, k))
    }

    fn put_session(&mut self, k: SessionKey) {
        let now = dataplane_now_ns();
        let s = Session {
            created: now,
            last_seen: now,
            public_addr: be(POOL),
            ..Default::default()
        };
        self.put(Loaded::sessions, k, s);
    }

    fn admit_address(&mut self, public: Endpoint, remote: Ipv4Addr) {
        self.put(
            Loaded::filter,
            filter_key(public, remote),
            dataplane_now_ns(),
        );
    }

    /// The FRAGS entry of `k`, in its direction's table.
    fn frag(&self, k: &FragKey) -> Option<FragValue> {
        if k.inbound != 0 {
            self.get(LoadedRef::frags_in, k)
        } else {
            self.get(LoadedRef::frags_out, k)
        }
    }

    /// Every FRAGS entry, both directions.
    fn frags(&self) -> Vec<(FragKey, FragValue)> {
        let mut v = bpf::all(&self.ebpf, LoadedRef::frags_out);
        v.extend(bpf::all(&self.ebpf, LoadedRef::frags_in));
        v
    }

    fn put_frag(&mut self, k: FragKey, v: FragValue) {
        if k.inbound != 0 {
            self.put(Loaded::frags_in, k, v);
        } else {
            self.put(Loaded::frags_out, k, v);
        }
    }

    /// (entries, max_entries) of the hash map `table` opens.
    fn usage<'e, K: aya::Pod, V: aya::Pod>(
        &'e self,
        table: impl FnOnce(&LoadedRef<'e>) -> Result<Read<'e, K, V>>,
    ) -> (u64, u32) {
        let m = table(&LoadedRef::new(&self.ebpf)).expect("opening the map");
        let u = usage(m.map()).expect("map usage");
        (u.entries.expect("a hash map's entries"), u.max_entries)
    }
}

// ---------------------------------------------------------------- FIB namespace

/// A scratch network namespace for hairpin test runs: the gateway's inside
/// interfaces `in0` (10.0.0.1/24) and `in1` (10.0.1.1/24) (veth pairs whose
/// peers stay down-stream in the same namespace), permanent neighbour
/// entries for the inside hosts, forwarding on.
struct FibNs {
    ns: Netns,
    in0: u32,
}

impl FibNs {
    fn new(tag: &str) -> FibNs {
        require_root();
        let ns = Netns::create(format!("xp{}-{tag}", std::process::id()));
        let mac = |m: [u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        for (dev, peer, m, addr) in [
            ("in0", "in0p", MAC_IN0, "10.0.0.1/24"),
            ("in1", "in1p", MAC_IN1, "10.0.1.1/24"),
        ] {
            ns.ip(&["link", "add", dev, "type", "veth", "peer", "name", peer]);
            ns.ip(&["link", "set", dev, "address", &mac(m)]);
            ns.ip(&["addr", "add", addr, "dev", dev]);
            ns.ip(&["link", "set", peer, "up"]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        for (host, m, dev) in [
            (A, MAC_A, "in0"),
            (B, MAC_B, "in0"),
            (E, MAC_E, "in0"),
            (C, MAC_C, "in1"),
        ] {
            ns.ip(&[
                "neigh",
                "replace",
                &host.to_string(),
                "lladdr",
                &mac(m),
                "dev",
                dev,
                "nud",
                "permanent",
            ]);
        }
        ns.sysctl("net.ipv4.ip_forward", "1");
        let out = ns.ip(&["-o", "link", "show", "dev", "in0"]);
        let in0 = out
            .split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ifindex in {out:?}"));
        FibNs { ns, in0 }
    }

    /// Runs `frame` through `xnat_inside_tc` as if it came in on `in0`,
    /// from a thread inside this namespace.
    fn inside(&self, hp: &Hp, frame: &[u8]) -> Outcome {
        let ctx = skb_ctx(self.in0);
        self.ns
            .in_ns(|| hp.run_ctx(Prog::Inside, frame, Some(&ctx)))
    }
}

/// A `struct __sk_buff` for BPF_PROG_TEST_RUN with only `ingress_ifindex`
/// and `ifindex` set (offsets 36 and 40 of the UAPI struct).
fn skb_ctx(ifindex: u32) -> Vec<u8> {
    let mut c = vec![0u8; 192];
    c[36..40].copy_from_slice(&ifindex.to_ne_bytes());
    c[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    c
}

// ---------------------------------------------------------------- helpers

fn ep(addr: Ipv4Addr, port: u16, proto: u8) -> Endpoint {
    Endpoint::new(addr, port, proto)
}

/// `frame` with its MAC addresses replaced (what a redirect after a FIB
/// lookup leaves).
fn with_macs(mut frame: Vec<u8>, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame
}

#[track_caller]
fn expect_verdict(what: &str, got: &Outcome, want: u32) {
    assert_eq!(
        got.verdict, want,
        "{what}: verdict {} (want {want})",
        got.verdict
    );
}

/// Asserts a hairpin redirect whose output equals `expected` (sent to the
/// host with MAC `dst` from the gateway's `src` MAC).
#[track_caller]
fn expect_hairpinned(what: &str, got: &Outcome, expected: &Packet, dst: [u8; 6], src: [u8; 6]) {
    expect_verdict(what, got, TC_ACT_REDIRECT);
    let want = with_macs(expected.frame(), dst, src);
    check_checksums(&got.data).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_frame_eq(what, &got.data, &want);
}

/// Asserts the packet was left untouched with `verdict`.
#[track_caller]
fn expect_untouched(what: &str, got: &Outcome, frame: &[u8], verdict: u32) {
    expect_verdict(what, got, verdict);
    assert_frame_eq(what, &got.data, frame);
}

fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), data: &[u8]) -> Packet {
    Packet::udp(src.0, dst.0, Udp::new(src.1, dst.1, data))
}

// ================================================================ hairpinning

/// B has a mapping 10.0.0.3:5000 ↔ 198.51.100.1:5000; A sends from
/// 10.0.0.2:40000 to B's public endpoint.
fn with_b_mapping(filtering: Filtering) -> Hp {
    let mut hp = Hp::inside(filtering);
    hp.add_mapping(ep(B, 5000, UDP), ep(POOL, 5000, UDP), 0);
    hp
}

fn a_to_b_pub() -> Packet {
    udp((A, 40000), (POOL, 5000), b"hairpin through B's mapping")
}

/// What B must receive: from A's public endpoint (port preserved), TTL
/// decremented once.
fn a_to_b_pub_translated() -> Packet {
    udp((POOL, 40000), (B, 5000), b"hairpin through B's mapping").with_ttl(63)
}

#[test]
fn hairpin_udp_endpoint_independent() {
    let fib = FibNs::new("heif");
    let hp = with_b_mapping(Filtering::EndpointIndependent);
    let out = fib.inside(&hp, &a_to_b_pub().frame());
    expect_hairpinned(
        "A → B's public endpoint",
        &out,
        &a_to_b_pub_translated(),
        MAC_B,
        MAC_IN0,
    );
    // A's mapping was made on the way (REQ-9a: B sees it as the source).
    assert_eq!(
        hp.napt_out(ep(A, 40000, UDP))
            .map(|m| ep(A, 40000, UDP).of_mapping(&m)),
        Some(ep(POOL, 40000, UDP))
    );
    // A session each way, as for any outbound and inbound packet.
    assert!(
        hp.session(&session_key(UDP, (A, 40000), (POOL, 5000)))
            .is_some()
    );
    assert!(
        hp.session(&session_key(UDP, (B, 5000), (POOL, 40000)))
            .is_some()
    );
    assert_eq!(hp.counter(Counter::HairpinTranslated), 1);
    assert_eq!(hp.counter(Counter::EgressTranslated), 1);
    assert_eq!(hp.counter(Counter::IngressTranslated), 1);

    // B answers A's public endpoint: hairpinned back with B's public
    // endpoint as the source.
    let back = udp((B, 5000), (POOL, 40000), b"and back");
    let out = fib.inside(&hp, &back.frame());
    let want = udp((POOL, 5000), (A, 40000), b"and back").with_ttl(63);
    expect_hairpinned("B → A's public endpoint", &out, &want, MAC_A, MAC_IN0);
    assert_eq!(hp.counter(Counter::HairpinTranslated), 2);
}

#[test]
fn hairpin_udp_address_dependent_filtering() {
    let fib = FibNs::new("hadf");
    let mut hp = with_b_mapping(Filtering::Address);
    let frame = a_to_b_pub().frame();
    let out = fib.inside(&hp, &frame);
    expect_verdict("A → B before B sent to 198.51.100.1", &out, TC_ACT_SHOT);
    assert_eq!(hp.counter(Counter::DropFiltered), 1);
    assert_eq!(hp.counter(Counter::HairpinTranslated), 0);
    // The outbound half ran: A has its mapping, B got no session.
    assert!(hp.napt_out(ep(A, 40000, UDP)).is_some());
    assert!(
        hp.session(&session_key(UDP, (B, 5000), (POOL, 40000)))
            .is_none()
    );

    // B has sent to the public address 198.51.100.1 (any port).
    hp.admit_address(ep(POOL, 5000, UDP), POOL);
    let out = fib.inside(&hp, &frame);
    expect_hairpinned(
        "A → B after B sent to 198.51.100.1",
        &out,
        &a_to_b_pub_translated(),
        MAC_B,
        MAC_IN0,
    );

    // B's mapping was made by B sending to 198.51.100.1 (another port):
    // its first session admits that address, no FILTER entry needed.
    let mut hp = with_b_mapping(Filtering::Address);
    hp.set_first(ep(B, 5000, UDP), (POOL, 6000));
    let out = fib.inside(&hp, &frame);
    expect_hairpinned(
        "A → B whose first session went to 198.51.100.1:6000",
        &out,
        &a_to_b_pub_translated(),
        MAC_B,
        MAC_IN0,
    );
}

#[test]
fn hairpin_udp_address_and_port_dependent_filtering() {
    let fib = FibNs::new("hapf");
    let mut hp = with_b_mapping(Filtering::AddressAndPort);
    let frame = a_to_b_pub().frame();
    let out = fib.inside(&hp, &frame);
    expect_verdict("A → B before B sent to A", &out, TC_ACT_SHOT);
    assert_eq!(hp.counter(Counter::DropFiltered), 1);

    // B has sent to 198.51.100.1 — but to another port (its mapping's
    // first session).
    hp.set_first(ep(B, 5000, UDP), (POOL, 40001));
    let out = fib.inside(&hp, &frame);
    expect_verdict(
        "A → B after B sent to 198.51.100.1:40001",
        &out,
        TC_ACT_SHOT,
    );
    assert_eq!(hp.counter(Counter::DropFiltered), 2);

    // B has sent to A's public endpoint 198.51.100.1:40000.
    hp.put_session(session_key(UDP, (B, 5000), (POOL, 40000)));
    let out = fib.inside(&hp, &frame);
    expect_hairpinned(
        "A → B after B sent to A's public endpoint",
        &out,
        &a_to_b_pub_translated(),
        MAC_B,
        MAC_IN0,
    );
}

#[test]
fn hairpin_tcp_through_port_forward() {
    let fib = FibNs::new("htcp");
    // Forwards are admitted whatever the filtering.
    let mut hp = Hp::inside(Filtering::AddressAndPort);
    hp.add_mapping(ep(B, 80, TCP), ep(POOL, 8080, TCP), MAPPING_FORWARD);
    let syn = Packet::tcp(A, POOL, Tcp::syn(40000, 8080));
    let out = fib.inside(&hp, &syn.frame());
    let want = Packet::tcp(POOL, B, Tcp::syn(40000, 80)).with_ttl(63);
    expect_hairpinned(
        "SYN A → forward 198.51.100.1:8080",
        &out,
        &want,
        MAC_B,
        MAC_IN0,
    );

    let mut synack = Tcp::syn(80, 40000);
    synack.flags = tcp_flags::SYN | tcp_flags::ACK;
    synack.ack = 0x3a5c_7e02;
    let back = Packet::tcp(B, POOL, synack.clone());
    let out = fib.inside(&hp, &back.frame());
    let mut want_tcp = synack;
    want_tcp.sport = 8080;
    let want = Packet::tcp(POOL, A, want_tcp).with_ttl(63);
    expect_hairpinned(
        "SYN-ACK B → A's public endpoint",
        &out,
        &want,
        MAC_A,
        MAC_IN0,
    );
    assert_eq!(hp.counter(Counter::HairpinTranslated), 2);
}

#[test]
fn hairpin_icmp_echo_through_static_mappings() {
    let fib = FibNs::new("hecho");
    let mut hp = Hp::inside(Filtering::AddressAndPort);
    hp.add_static(E, PUB_E);
    hp.add_static(C, PUB_C);
    // One hop: `sent` comes in on in0; `want` (TTL decremented) must leave
    // for the host with MAC `to`, from the gateway's MAC `via`.
    let hop = |what: &str, sent: Packet, want: Packet, to: [u8; 6], via: [u8; 6]| {
        let out = fib.inside(&hp, &sent.frame());
        expect_hairpinned(what, &out, &want.with_ttl(63), to, via);
    };
    let data = b"ping data 0123456789";

    // NAPT host A → E's static address (same interface) and back.
    hop(
        "echo request A → 203.0.113.3",
        Packet::icmp(A, PUB_E, Icmp::echo_request(0x1234, 1, data)),
        Packet::icmp(POOL, E, Icmp::echo_request(0x1234, 1, data)),
        MAC_E,
        MAC_IN0,
    );
    assert!(
        hp.napt_out(ep(A, 0x1234, ICMP)).is_some(),
        "A's ICMP mapping"
    );
    hop(
        "echo reply E → A's public identifier",
        Packet::icmp(E, POOL, Icmp::echo_reply(0x1234, 1, data)),
        Packet::icmp(PUB_E, A, Icmp::echo_reply(0x1234, 1, data)),
        MAC_A,
        MAC_IN0,
    );

    // Static C (behind in1) → static E: both addresses translated, the
    // packet leaves through the other inside interface.
    let data = b"static to static";
    hop(
        "echo request E → 203.0.113.2",
        Packet::icmp(E, PUB_C, Icmp::echo_request(7, 1, data)),
        Packet::icmp(PUB_E, C, Icmp::echo_request(7, 1, data)),
        MAC_C,
        MAC_IN1,
    );
}

#[test]
fn hairpin_icmp_errors() {
    let fib = FibNs::new("herr");
    let mut hp = Hp::inside(Filtering::AddressAndPort);
    hp.add_static(E, PUB_E);
    hp.add_mapping(ep(A, 40000, UDP), ep(POOL, 40000, UDP), 0);
    hp.add_mapping(ep(B, 7000, UDP), ep(POOL, 7000, UDP), MAPPING_FORWARD);

    /// A host answers port unreachable to the datagram A sent from
    /// 10.0.0.2:40000 to the host's public endpoint (it got it from A's
    /// public endpoint); A must get the error from that public endpoint.
    struct Case {
        what: &'static str,
        host: (Ipv4Addr, u16),
        public: (Ipv4Addr, u16),
    }
    let cases = [
        Case {
            what: "port unreachable from static E",
            host: (E, 9),
            public: (PUB_E, 9),
        },
        Case {
            what: "port unreachable from B behind a forward",
            host: (B, 7000),
            public: (POOL, 7000),
        },
    ];
    for Case { what, host, public } in cases {
        let got = udp((POOL, 40000), host, b"anyone there?").with_ttl(63);
        let err = Packet::icmp_error(
            host.0,
            POOL,
            icmp::DEST_UNREACH,
            icmp::PORT_UNREACH,
            [0; 4],
            &got,
            None,
        );
        let out = fib.inside(&hp, &err.frame());
        let sent = udp((A, 40000), public, b"anyone there?").with_ttl(63);
        let want = Packet::icmp_error(
            public.0,
            A,
            icmp::DEST_UNREACH,
            icmp::PORT_UNREACH,
            [0; 4],
            &sent,
            None,
        )
        .with_ttl(63);
        expect_hairpinned(what, &out, &want, MAC_A, MAC_IN0);
    }
    assert!(hp.counter(Counter::IcmpErrorsTranslated) >= 2);
}

#[test]
fn hairpin_ttl_1_is_left_to_the_stack() {
    let fib = FibNs::new("httl");
    let hp = with_b_mapping(Filtering::EndpointIndependent);
    let frame = a_to_b_pub().with_ttl(1).frame();
    let out = fib.inside(&hp, &frame);
    expect_untouched("TTL 1", &out, &frame, TC_ACT_OK);
    assert!(
        hp.napt_out(ep(A, 40000, UDP)).is_none(),
        "no mapping for a TTL-1 packet"
    );
    assert_eq!(hp.counter(Counter::HairpinTranslated), 0);
}

#[test]
fn hairpin_leaves_everything_else_to_the_stack() {
    let fib = FibNs::new("hnot");
    let hp = with_b_mapping(Filtering::EndpointIndependent);
    let cases = [
        (
            "A → outside server",
            udp((A, 40000), (SRV, 53), b"q").frame(),
        ),
        (
            "A → the pool address, no mapping on that port",
            udp((A, 40000), (POOL, 5555), b"q").frame(),
        ),
        (
            "A → the gateway itself",
            udp((A, 40000), (Ipv4Addr::new(10, 0, 0, 1), 53), b"q").frame(),
        ),
        (
            "echo request to the pool address (the gateway's own)",
            Packet::icmp(A, POOL, Icmp::echo_request(5000, 1, b"x")).frame(),
        ),
        ("ARP", frame::arp_request(A, Ipv4Addr::new(10, 0, 0, 1))),
        ("IPv6", frame::ipv6_udp(b"v6")),
    ];
    for (what, frame) in cases {
        let out = fib.inside(&hp, &frame);
        expect_untouched(what, &out, &frame, TC_ACT_OK);
    }
    assert_eq!(hp.napt_out_len(), 1, "only B's mapping");
    assert_eq!(hp.counter(Counter::HairpinTranslated), 0);
}

/// Without a route (a namespace with nothing in it) the FIB lookup fails:
/// the packet, already translated both ways, is dropped, never passed to
/// the stack half-translated.
#[test]
fn hairpin_without_a_route_is_dropped_after_translation() {
    let empty = Netns::create(format!("xp{}-hnrt", std::process::id()));
    let hp = with_b_mapping(Filtering::EndpointIndependent);
    let frame = a_to_b_pub().frame();
    let out = empty.in_ns(|| hp.run(Prog::Inside, &frame));
    expect_verdict("no route", &out, TC_ACT_SHOT);
    // Translated both ways before the lookup. Whether the TTL was
    // decremented before it is not specified: take the output's TTL (after
    // checking the header checksum agrees with it). The MAC addresses are
    // untouched.
    check_checksums(&out.data).unwrap_or_else(|e| panic!("no route: {e}"));
    let ttl = out.data[ETH_HLEN + 8];
    assert!(ttl == 64 || ttl == 63, "no route: TTL {ttl}");
    let want = a_to_b_pub_translated().with_ttl(ttl);
    assert_frame_eq("no route", &out.data, &want.frame());
    assert_eq!(hp.counter(Counter::HairpinTranslated), 1);
}

// ================================================================ fragments

/// A 3000-byte UDP datagram (three fragments on an MTU-1500 link).
fn big_udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), id: u16) -> Packet {
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 3) as u8).collect();
    udp(src, dst, &data).with_id(id)
}

/// Its fragments: [0, 1480) with MF, [1480, 2960) with MF, the rest.
fn frags(p: &Packet) -> [Packet; 3] {
    [
        p.fragment(0, 1480, true),
        p.fragment(1480, 1480, true),
        p.fragment(2960, 1480, false),
    ]
}

fn fkey(src: Ipv4Addr, dst: Ipv4Addr, id: u16, proto: u8, inbound: bool) -> FragKey {
    FragKey {
        src: be(src),
        dst: be(dst),
        id: id.to_be(),
        proto,
        inbound: inbound as u8,
    }
}

#[test]
fn egress_first_fragment_decides_later_fragments_follow() {
    let hp = Hp::new(Filtering::Address);
    let dgram = big_udp((A, 41000), (SRV, 9000), 0x4242);
    let [f0, f1, f2] = frags(&dgram);
    let translated = big_udp((POOL, 41000), (SRV, 9000), 0x4242);
    let [t0, t1, t2] = frags(&translated);
    let before = dataplane_now_ns();

    let out = hp.run_hook(Hook::EgressTc, &f0.frame());
    expect_verdict("first fragment", &out, TC_ACT_OK);
    check_checksums(&out.data).unwrap();
    // The ports and the UDP checksum (over the whole datagram) translated.
    assert_frame_eq("first fragment", &out.data, &t0.frame());
    let v = hp
        .frag(&fkey(A, SRV, 0x4242, UDP, false))
        .unwrap_or_else(|| panic!("no FRAGS entry for the first fragment: {:?}", hp.frags()));
    assert_eq!(v.new_addr, be(POOL));
    assert!(clock_window(before, dataplane_now_ns()).contains(&v.seen));

    for (what, f, t) in [("middle fragment", &f1, &t1), ("last fragment", &f2, &t2)] {
        let out = hp.run_hook(Hook::EgressTc, &f.frame());
        expect_verdict(what, &out, TC_ACT_OK);
        check_checksums(&out.data).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_frame_eq(what, &out.data, &t.frame());
    }
    assert_eq!(hp.counter(Counter::FragmentsTranslated), 2);
    assert_eq!(hp.counter(Counter::EgressTranslated), 3);
    assert_eq!(hp.counter(Counter::DropFragmentUnknown), 0);
    // One mapping and one session: later fragments touch neither.
    assert_eq!(hp.napt_out_len(), 1);
}

#[test]
fn ingress_first_fragment_decides_later_fragments_follow() {
    for hook in Hook::INGRESS {
        let mut hp = Hp::new(Filtering::Address);
        hp.add_mapping(ep(A, 41000, UDP), ep(POOL, 41000, UDP), 0);
        hp.admit_address(ep(POOL, 41000, UDP), SRV);
        let dgram = big_udp((SRV, 9000), (POOL, 41000), 0x5151);
        let [f0, f1, f2] = frags(&dgram);
        let translated = big_udp((SRV, 9000), (A, 41000), 0x5151);
        let [t0, t1, t2] = frags(&translated);
        for (what, f, t) in [
            ("first", &f0, &t0),
            ("middle", &f1, &t1),
            ("last", &f2, &t2),
        ] {
            let what = format!("{hook:?}: {what} fragment");
            let out = hp.run_hook(hook, &f.frame());
            expect_verdict(&what, &out, hook.pass());
            check_checksums(&out.data).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_frame_eq(&what, &out.data, &t.frame());
        }
        let v = hp
            .frag(&fkey(SRV, POOL, 0x5151, UDP, true))
            .expect("FRAGS entry");
        assert_eq!(v.new_addr, be(A), "{hook:?}");
        assert_eq!(hp.counter(Counter::FragmentsTranslated), 2, "{hook:?}");
        assert_eq!(hp.counter(Counter::IngressTranslated), 3, "{hook:?}");
    }
}

#[test]
fn unfragmented_datagrams_are_not_remembered() {
    let hp = Hp::new(Filtering::Address);
    let p = udp((A, 41000), (SRV, 9000), b"small").with_id(0x0101);
    let out = hp.run_hook(Hook::EgressTc, &p.frame());
    expect_verdict("unfragmented", &out, TC_ACT_OK);
    assert!(hp.frags().is_empty(), "FRAGS: {:?}", hp.frags());
}

#[test]
fn unknown_later_fragment_dropped_outbound_passed_inbound() {
    let mut hp = Hp::new(Filtering::Address);
    hp.add_mapping(ep(A, 41000, UDP), ep(POOL, 41000, UDP), 0);
    let [_, out_later, _] = frags(&big_udp((A, 41000), (SRV, 9000), 0x6161));
    let [_, in_later, _] = frags(&big_udp((SRV, 9000), (POOL, 41000), 0x6262));

    // Outbound: never sent untranslated. Dropped, or held (TC) for a first
    // fragment that may still come — dropped either way now.
    let frame = out_later.frame();
    let out = hp.run_hook(Hook::EgressTc, &frame);
    expect_verdict("unknown outbound later fragment", &out, TC_ACT_SHOT);
    let counted = hp.counter(Counter::DropFragmentUnknown) + hp.counter_named("fragments_held");
    assert_eq!(counted, 1, "drop_fragment_unknown + fragments_held");

    // Inbound, XDP: passed to the stack untouched (it may be the
    // gateway's own), counted.
    let frame = in_later.frame();
    let out = hp.run_hook(Hook::IngressXdp, &frame);
    expect_untouched(
        "unknown inbound later fragment (XDP)",
        &out,
        &frame,
        Hook::IngressXdp.pass(),
    );
    assert_eq!(hp.counter(Counter::IngressPassedFragment), 1);

    // Inbound, TC: passed the same way, or held until its first fragment.
    let held = hp.counter_named("fragments_held");
    let out = hp.run_hook(Hook::IngressTc, &frame);
    if hp.counter_named("fragments_held") > held {
        assert!(
            out.verdict == TC_ACT_SHOT || out.verdict == TC_ACT_STOLEN,
            "held inbound fragment: verdict {}",
            out.verdict
        );
    } else {
        expect_untouched(
            "unknown inbound later fragment (TC)",
            &out,
            &frame,
            TC_ACT_OK,
        );
        assert_eq!(hp.counter(Counter::IngressPassedFragment), 2);
    }
    // No state for fragments nobody asked for.
    assert!(hp.frags().is_empty(), "FRAGS: {:?}", hp.frags());
    assert_eq!(hp.napt_out_len(), 1);
}

#[test]
fn frags_entries_match_source_destination_id_protocol_and_direction() {
    let hp = Hp::new(Filtering::Address);
    let dgram = big_udp((A, 41000), (SRV, 9000), 0x7171);
    let [f0, _, _] = frags(&dgram);
    assert_eq!(hp.run_hook(Hook::EgressTc, &f0.frame()).verdict, TC_ACT_OK);
    let others = [
        ("another id", big_udp((A, 41000), (SRV, 9000), 0x7172)),
        (
            "another destination",
            big_udp((A, 41000), (SRV2, 9000), 0x7171),
        ),
        ("another source", big_udp((B, 41000), (SRV, 9000), 0x7171)),
    ];
    for (what, p) in others {
        let [_, later, _] = frags(&p);
        let out = hp.run_hook(Hook::EgressTc, &later.frame());
        expect_verdict(what, &out, TC_ACT_SHOT);
    }
    // Another protocol, same id.
    let mut tcp_later = frags(&dgram)[1].clone();
    if let frame::L4::Raw { proto, .. } = &mut tcp_later.l4 {
        *proto = TCP;
    }
    let out = hp.run_hook(Hook::EgressTc, &tcp_later.frame());
    expect_verdict("another protocol", &out, TC_ACT_SHOT);
    // The outbound entry does not translate inbound fragments.
    let mut inbound = Hp::new(Filtering::Address);
    inbound.put_frag(
        fkey(A, SRV, 0x7171, UDP, false),
        FragValue {
            new_addr: be(POOL),
            _pad: 0,
            seen: dataplane_now_ns(),
        },
    );
    let [_, in_later, _] = frags(&big_udp((A, 9000), (SRV, 41000), 0x7171));
    let frame = in_later.frame();
    let out = inbound.run_hook(Hook::IngressXdp, &frame);
    expect_untouched(
        "outbound entry, inbound fragment",
        &out,
        &frame,
        Hook::IngressXdp.pass(),
    );
}

#[test]
fn stale_frags_entries_are_ignored() {
    let thirty_one = 31_000_000_000u64;
    let twenty_nine = 29_000_000_000u64;
    assert!(FRAG_TIMEOUT_NS > twenty_nine && FRAG_TIMEOUT_NS < thirty_one);
    for (age, fresh) in [(thirty_one, false), (twenty_nine, true)] {
        let mut hp = Hp::new(Filtering::Address);
        hp.add_mapping(ep(A, 41000, UDP), ep(POOL, 41000, UDP), 0);
        // Taken after loading (the verifier takes a while): the fresh case
        // then has a second before it goes stale.
        let seen = dataplane_now_ns().saturating_sub(age);
        hp.put_frag(
            fkey(A, SRV, 0x8181, UDP, false),
            FragValue {
                new_addr: be(POOL),
                _pad: 0,
                seen,
            },
        );
        hp.put_frag(
            fkey(SRV, POOL, 0x8282, UDP, true),
            FragValue {
                new_addr: be(A),
                _pad: 0,
                seen,
            },
        );
        let [_, out_later, _] = frags(&big_udp((A, 41000), (SRV, 9000), 0x8181));
        let [_, out_want, _] = frags(&big_udp((POOL, 41000), (SRV, 9000), 0x8181));
        let [_, in_later, _] = frags(&big_udp((SRV, 9000), (POOL, 41000), 0x8282));
        let [_, in_want, _] = frags(&big_udp((SRV, 9000), (A, 41000), 0x8282));

        let out = hp.run_hook(Hook::EgressTc, &out_later.frame());
        if fresh {
            expect_verdict("29 s old entry, outbound", &out, TC_ACT_OK);
            assert_frame_eq("29 s old entry, outbound", &out.data, &out_want.frame());
        } else {
            expect_verdict("31 s old entry, outbound", &out, TC_ACT_SHOT);
        }
        for hook in Hook::INGRESS {
            let frame = in_later.frame();
            let out = hp.run_hook(hook, &frame);
            let what = format!("{} s old entry, inbound, {hook:?}", age / 1_000_000_000);
            if fresh {
                expect_verdict(&what, &out, hook.pass());
                assert_frame_eq(&what, &out.data, &in_want.frame());
            } else if hook == Hook::IngressXdp || out.verdict == TC_ACT_OK {
                expect_untouched(&what, &out, &frame, hook.pass());
            } else {
                // TC may hold it for a first fragment to come.
                assert!(
                    hp.counter_named("fragments_held") > 0,
                    "{what}: verdict {}",
                    out.verdict
                );
            }
        }
    }
}

#[test]
fn static_nat_translates_every_fragment_by_address() {
    let mut hp = Hp::new(Filtering::Address);
    hp.add_static(S, PUB_S);
    let [o0, o1, o2] = frags(&big_udp((S, 41000), (SRV, 9000), 0x9191));
    let [w0, w1, w2] = frags(&big_udp((PUB_S, 41000), (SRV, 9000), 0x9191));
    // Later fragments alone, before (and without) their first fragment.
    for (what, f, w) in [
        ("middle", &o1, &w1),
        ("last", &o2, &w2),
        ("first", &o0, &w0),
    ] {
        let out = hp.run_hook(Hook::EgressTc, &f.frame());
        expect_verdict(what, &out, TC_ACT_OK);
        assert_frame_eq(&format!("static egress, {what}"), &out.data, &w.frame());
    }
    let [i0, i1, i2] = frags(&big_udp((SRV, 9000), (PUB_S, 41000), 0x9292));
    let [v0, v1, v2] = frags(&big_udp((SRV, 9000), (S, 41000), 0x9292));
    for hook in Hook::INGRESS {
        for (what, f, w) in [
            ("last", &i2, &v2),
            ("middle", &i1, &v1),
            ("first", &i0, &v0),
        ] {
            let out = hp.run_hook(hook, &f.frame());
            expect_verdict(what, &out, hook.pass());
            assert_frame_eq(&format!("static {hook:?}, {what}"), &out.data, &w.frame());
        }
    }
    assert!(
        hp.frags().is_empty(),
        "static NAT needs no FRAGS: {:?}",
        hp.frags()
    );
}

/// Reverse order through a TC program (REQ-14): the later fragment that
/// comes first is held — it never leaves untranslated — and released,
/// translated, once its first fragment has been translated. The release
/// sends one of the two as a clone (`bpf_clone_redirect` on the test skb's
/// device, inside a scratch namespace where nothing listens) and leaves the
/// other in the skb: the output is one of them, translated.
fn reverse_order(hook: Hook, inbound: bool) {
    let scratch = Netns::create(format!(
        "xp{}-rv{}",
        std::process::id(),
        if inbound { "i" } else { "o" }
    ));
    let mut hp = Hp::new(Filtering::Address);
    let (dgram, want) = if inbound {
        hp.add_mapping(ep(A, 41000, UDP), ep(POOL, 41000, UDP), 0);
        hp.admit_address(ep(POOL, 41000, UDP), SRV);
        (
            big_udp((SRV, 9000), (POOL, 41000), 0xa1a1),
            big_udp((SRV, 9000), (A, 41000), 0xa1a1),
        )
    } else {
        (
            big_udp((A, 41000), (SRV, 9000), 0xa1a1),
            big_udp((POOL, 41000), (SRV, 9000), 0xa1a1),
        )
    };
    let [f0, _, f2] = frags(&dgram);
    let [t0, _, t2] = frags(&want);
    let what = format!("{hook:?}");

    let out = scratch.in_ns(|| hp.run_hook(hook, &f2.frame()));
    assert!(
        out.verdict == TC_ACT_SHOT || out.verdict == TC_ACT_STOLEN,
        "{what}: a later fragment before its first: verdict {} (passed on, untranslated)",
        out.verdict
    );
    assert_eq!(
        hp.counter_named("fragments_held"),
        1,
        "{what}: fragments_held"
    );

    let out = scratch.in_ns(|| hp.run_hook(hook, &f0.frame()));
    expect_verdict(&format!("{what}: first fragment"), &out, TC_ACT_OK);
    check_checksums(&out.data).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        hp.counter_named("fragments_released"),
        1,
        "{what}: fragments_released"
    );
    if out.data != t0.frame() {
        assert_frame_eq(
            &format!("{what}: released fragment"),
            &out.data,
            &t2.frame(),
        );
    }
}

#[test]
fn reverse_order_outbound_is_held_and_released() {
    reverse_order(Hook::EgressTc, false);
}

#[test]
fn reverse_order_inbound_tc_is_held_and_released() {
    reverse_order(Hook::IngressTc, true);
}

/// XDP cannot hold a packet: an early inbound later fragment goes to the
/// stack untouched (counted), and the first fragment is translated alone.
#[test]
fn reverse_order_inbound_xdp_passes_the_early_fragment() {
    let mut hp = Hp::new(Filtering::Address);
    hp.add_mapping(ep(A, 41000, UDP), ep(POOL, 41000, UDP), 0);
    hp.admit_address(ep(POOL, 41000, UDP), SRV);
    let [f0, _, f2] = frags(&big_udp((SRV, 9000), (POOL, 41000), 0xa2a2));
    let [t0, _, _] = frags(&big_udp((SRV, 9000), (A, 41000), 0xa2a2));
    let frame = f2.frame();
    let out = hp.run_hook(Hook::IngressXdp, &frame);
    expect_untouched(
        "early later fragment (XDP)",
        &out,
        &frame,
        Hook::IngressXdp.pass(),
    );
    assert_eq!(hp.counter(Counter::IngressPassedFragment), 1);
    let out = hp.run_hook(Hook::IngressXdp, &f0.frame());
    expect_verdict("first fragment (XDP)", &out, Hook::IngressXdp.pass());
    assert_frame_eq("first fragment (XDP)", &out.data, &t0.frame());
}

/// Memory stays bounded under a flood: FRAGS_OUT (LRU) never exceeds its
/// size however many first fragments pass; stray later fragments create no
/// state but a bounded hold map (TC).
#[test]
fn fragment_floods_stay_bounded() {
    let scratch = Netns::create(format!("xp{}-fld", std::process::id()));
    let hp = Hp::new(Filtering::Address);
    let (_, frags_max) = hp.usage(LoadedRef::frags_out);
    let n = frags_max + 1000;
    let payload = [0x33u8; 64];
    scratch.in_ns(|| {
        for i in 0..n {
            let id = (i as u16).wrapping_mul(40503);
            let p = udp((A, 42000), (SRV, 9), &payload).with_id(id);
            let first = p.fragment(0, 32, true);
            let out = hp.run_hook(Hook::EgressTc, &first.frame());
            assert_eq!(out.verdict, TC_ACT_OK, "first fragment #{i}");
        }
    });
    let (entries, max) = hp.usage(LoadedRef::frags_out);
    assert!(
        entries <= u64::from(max),
        "FRAGS_OUT holds {entries} > {max}"
    );
    assert!(entries > 0);
    // The newest datagram is remembered (LRU evicts the oldest).
    let last_id = ((n - 1) as u16).wrapping_mul(40503);
    assert!(hp.frag(&fkey(A, SRV, last_id, UDP, false)).is_some());

    let strays = 5000u32;
    let frags_before = hp.frags().len();
    scratch.in_ns(|| {
        for i in 0..strays {
            // To another server: no FRAGS entry of the flood above matches.
            let p = udp((A, 42001), (SRV2, 9), &payload).with_id(i as u16);
            let mut later = p.fragment(8, 32, false);
            later.ip.id = (i as u16) ^ 0x5555;
            let out = hp.run_hook(Hook::EgressTc, &later.frame());
            assert_eq!(out.verdict, TC_ACT_SHOT, "stray #{i}");
        }
    });
    let counted = hp.counter(Counter::DropFragmentUnknown) + hp.counter_named("fragments_held");
    assert_eq!(counted, u64::from(strays));
    assert_eq!(
        hp.frags().len(),
        frags_before,
        "strays must not create FRAGS entries"
    );
    assert_eq!(hp.napt_out_len(), 1, "strays must not create mappings");
    for (name, (entries, max)) in [
        (MAP_FRAG_HOLD_OUT, hp.usage(LoadedRef::frag_hold_out)),
        (MAP_FRAG_HOLD_IN, hp.usage(LoadedRef::frag_hold_in)),
    ] {
        assert!(entries <= u64::from(max), "{name} holds {entries} > {max}");
    }
}

/// The two directions have tables of their own: first fragments from the
/// outside, twice as many as the inbound table holds (to a pool address,
/// no mapping's: each remembered, as the gateway's own), evict no outbound
/// datagram. An inside host's datagram whose first fragment left before
/// the flood still gets its later fragments translated.
#[test]
fn an_inbound_fragment_flood_leaves_outbound_datagrams_translated() {
    let scratch = Netns::create(format!("xp{}-ifl", std::process::id()));
    let hp = Hp::new(Filtering::Address);
    let dgram = big_udp((A, 41000), (SRV, 9000), 0x6161);
    let [f0, f1, f2] = frags(&dgram);
    let [t0, t1, t2] = frags(&big_udp((POOL, 41000), (SRV, 9000), 0x6161));
    let out = scratch.in_ns(|| hp.run_hook(Hook::EgressTc, &f0.frame()));
    expect_verdict("first fragment", &out, TC_ACT_OK);
    assert_frame_eq("first fragment", &out.data, &t0.frame());

    let (_, inbound_max) = hp.usage(LoadedRef::frags_in);
    let n = 2 * inbound_max;
    assert!(n <= 1 << 16, "{n} identifications");
    let payload = [0x44u8; 64];
    scratch.in_ns(|| {
        for i in 0..n {
            // Distinct datagrams (FRAGS keys): the identification varies.
            let p = udp((SRV2, 9000), (POOL, 5000), &payload).with_id(i as u16);
            let first = p.fragment(0, 32, true);
            let out = hp.run_hook(Hook::IngressTc, &first.frame());
            assert_eq!(out.verdict, TC_ACT_OK, "outside first fragment #{i}");
        }
    });
    let remembered = hp.frags().iter().filter(|(k, _)| k.inbound != 0).count();
    assert!(
        remembered as u32 > inbound_max / 2,
        "the flood fills the inbound table: {remembered} of {inbound_max} entries"
    );

    assert!(
        hp.frag(&fkey(A, SRV, 0x6161, UDP, false)).is_some(),
        "the outbound datagram's entry was evicted"
    );
    scratch.in_ns(|| {
        for (what, f, t) in [("middle fragment", &f1, &t1), ("last fragment", &f2, &t2)] {
            let out = hp.run_hook(Hook::EgressTc, &f.frame());
            expect_verdict(what, &out, TC_ACT_OK);
            assert_frame_eq(what, &out.data, &t.frame());
        }
    });
    assert_eq!(hp.counter(Counter::DropFragmentUnknown), 0);
}

// ================================================================ hairpinned fragments

/// A fragmented datagram from A to B's public endpoint: the first fragment
/// is hairpinned and remembered both ways; the later fragments must follow
/// it through the hairpin (translated both ways, forwarded), not go up to
/// the gateway's stack, which would hold them for a reassembly that never
/// completes.
#[test]
fn hairpin_fragments_follow_their_first_fragment() {
    let fib = FibNs::new("hfrag");
    let hp = with_b_mapping(Filtering::EndpointIndependent);
    let dgram = big_udp((A, 40000), (POOL, 5000), 0xb1b1);
    let [f0, f1, f2] = frags(&dgram);
    let want_dgram = big_udp((POOL, 40000), (B, 5000), 0xb1b1).with_ttl(63);
    let [w0, w1, w2] = frags(&want_dgram);
    let out = fib.inside(&hp, &f0.frame());
    expect_hairpinned("first fragment", &out, &w0, MAC_B, MAC_IN0);
    assert!(
        hp.frag(&fkey(A, POOL, 0xb1b1, UDP, false)).is_some(),
        "outbound FRAGS entry"
    );
    assert!(
        hp.frag(&fkey(POOL, POOL, 0xb1b1, UDP, true)).is_some(),
        "inbound FRAGS entry"
    );
    for (what, f, w) in [("middle fragment", &f1, &w1), ("last fragment", &f2, &w2)] {
        let out = fib.inside(&hp, &f.frame());
        expect_hairpinned(what, &out, w, MAC_B, MAC_IN0);
    }
}

/// The same to a static public address (every fragment carries the static
/// address, so the later ones are recognised as hairpin traffic).
#[test]
fn hairpin_fragments_to_a_static_address() {
    let fib = FibNs::new("hfst");
    let mut hp = Hp::inside(Filtering::EndpointIndependent);
    hp.add_static(E, PUB_E);
    let dgram = big_udp((A, 40000), (PUB_E, 5300), 0xc1c1);
    let want_dgram = big_udp((POOL, 40000), (E, 5300), 0xc1c1).with_ttl(63);
    for (i, (f, w)) in frags(&dgram)
        .iter()
        .zip(frags(&want_dgram).iter())
        .enumerate()
    {
        let out = fib.inside(&hp, &f.frame());
        expect_hairpinned(&format!("fragment {i}"), &out, w, MAC_E, MAC_IN0);
    }
}

/// The hold tables are per direction too: an outside flood of stray later
/// fragments to a pool address (each held, twice as many as the inbound
/// hold table takes) evicts none of the inside host's held fragments,
/// which are released, translated, once their first fragment comes.
#[test]
fn an_inbound_stray_fragment_flood_leaves_held_outbound_fragments() {
    let scratch = Netns::create(format!("xp{}-hfl", std::process::id()));
    let hp = Hp::new(Filtering::Address);
    let [f0, _, f2] = frags(&big_udp((A, 41000), (SRV, 9000), 0x7171));
    let out = scratch.in_ns(|| hp.run_hook(Hook::EgressTc, &f2.frame()));
    assert!(
        out.verdict == TC_ACT_SHOT || out.verdict == TC_ACT_STOLEN,
        "the inside's later fragment: verdict {}",
        out.verdict
    );
    assert_eq!(hp.counter_named("fragments_held"), 1);

    let (_, inbound_max) = hp.usage(LoadedRef::frag_hold_in);
    let n = 2 * inbound_max;
    scratch.in_ns(|| {
        for i in 0..n {
            let stray = big_udp((SRV2, 9000), (POOL, 42000), 0x2000 + i as u16);
            let [_, _, later] = frags(&stray);
            hp.run_hook(Hook::IngressTc, &later.frame());
        }
    });
    let held_in = hp.counter_named("fragments_held") - 1;
    assert!(
        held_in > u64::from(inbound_max),
        "the flood filled the inbound hold table: {held_in} held"
    );

    let out = scratch.in_ns(|| hp.run_hook(Hook::EgressTc, &f0.frame()));
    expect_verdict("the inside's first fragment", &out, TC_ACT_OK);
    assert_eq!(
        hp.counter_named("fragments_released"),
        1,
        "the inside's held fragment was evicted by the outside's"
    );
}
