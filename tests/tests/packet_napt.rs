//! Packet tests for dynamic NAPT (issue 3): the real compiled BPF programs
//! run on crafted frames through `BPF_PROG_TEST_RUN`, with NAPT configured
//! by writing CONFIG / POOL / INTERNAL directly (unpinned maps, one instance
//! per test or per hook).
//!
//! Every expected output is built from scratch with the expected
//! translation (full checksums, see `xnat_tests::frame`) and compared with
//! the program's output byte for byte; every checksum of a translated output
//! is also validated on its own. Counters are checked exactly: the listed
//! ones must move by the given amount and every other one must stay put.
//! Ingress behaviour is checked through both the XDP and the TC ingress
//! program. Needs root: run with `cargo xtask test` (or as root,
//! `cargo test -p xnat-tests --test packet_napt`).

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;

use nat_common::csum::checksum;
use nat_common::stats::COUNTER_COUNT;
use nat_common::{
    Counter, EVENT_HOST_CAP, EVENT_PORTS_EXHAUSTED, EVENT_QUOTE_MAX, EndpointKey, Event,
    FirstSession, InsideEndpoint, MAP_NAPT_IN, MAP_NAPT_OUT, MAPPING_FORWARD, Mapping, NatConfig,
    PINNED_RECORDING, SESSION_INBOUND, Session, SessionKey, TCP_ESTABLISHED, TCP_FIN_BOTH,
    TCP_FIN_OUT, TCP_SYN_IN, TCP_SYN_OUT, TCP_SYN_RECV, blocks, tcp_state_name,
};
use nat_userspace::settings::napt::Filtering;
use nat_userspace::tables::{Loaded, LoadedRef};
use xnat_tests::bpf::Hook;
use xnat_tests::frame::{
    ETH_HLEN, Icmp, L4, Packet, Tcp, Udp, arp_request, assert_frame_eq, check_checksums, cut,
    hex_dump, icmp, ipv6_udp, proto, tcp_flags,
};
use xnat_tests::napt_maps::{
    Endpoint, Napt, be, clock_window, dataplane_now_ns, filter_key, session_key,
};

/// The inside network (`--internal 10.0.0.0/8`).
const INSIDE_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(10, 0, 0, 0), 8);
/// Inside hosts.
const H1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const H2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const H3: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
/// An inside host that "owns" ports the tests occupy by hand.
const OCCUPANT: Ipv4Addr = Ipv4Addr::new(10, 255, 255, 254);
/// The pool of most tests (`--pool 198.51.100.1`).
const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// A four-address pool.
const POOL4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(198, 51, 100, 2),
    Ipv4Addr::new(198, 51, 100, 3),
    Ipv4Addr::new(198, 51, 100, 4),
];
/// A static 1:1 public address (not in the pool).
const STATIC_PUB: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);
/// Servers on the outside.
const R1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const R2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
/// A router beyond the gateway (sends ICMP errors).
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// A source that is not inside (not in INTERNAL).
const OUTSIDER: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 9);

const TCP: u8 = proto::TCP;
const UDP: u8 = proto::UDP;
const ICMP: u8 = proto::ICMP;

/// Router alert option: IHL 6.
const OPT_IHL6: [u8; 4] = [0x94, 0x04, 0x00, 0x00];

// ================================================================ harness

/// An instance with NAPT on: POOL, 10.0.0.0/8 inside, defaults
/// (address-dependent filtering, ports 1024–65535).
fn napt() -> Napt {
    napt_with(|_| {})
}

fn napt_with(tweak: impl FnOnce(&mut NatConfig)) -> Napt {
    Napt::with(&[POOL], &[INSIDE_NET], tweak)
}

/// What must come out.
#[derive(Clone, Copy, Debug)]
enum Want<'a> {
    /// Passed with exactly these bytes, all checksums valid.
    Pass(&'a [u8]),
    /// Passed, all checksums valid; the caller checks the bytes.
    Translated,
    /// Passed with the input bytes.
    Untouched,
    /// Dropped (XDP_DROP / TC_ACT_SHOT).
    Drop,
}

type Deltas = Vec<(Counter, u64)>;

#[track_caller]
fn assert_deltas(ctx: &str, before: &[u64], after: &[u64], want: &[(Counter, u64)]) {
    for c in Counter::ALL {
        let delta = after[c as usize].wrapping_sub(before[c as usize]);
        let exp: u64 = want.iter().filter(|(k, _)| *k == c).map(|(_, v)| v).sum();
        assert_eq!(
            delta,
            exp,
            "counter {} moved by {delta}, expected {exp}; {ctx}",
            c.name()
        );
    }
}

/// Runs `input` through `hook`, checks the verdict, the output and the
/// counter deltas (exactly `deltas`, every other counter unchanged);
/// returns the output frame.
#[track_caller]
fn run(
    n: &Napt,
    hook: Hook,
    what: &str,
    input: &[u8],
    want: Want,
    deltas: &[(Counter, u64)],
) -> Vec<u8> {
    let before = n.counters();
    let out = n.run(hook, input);
    let after = n.counters();
    let ctx = || format!("{what} via {hook:?}\n--- input:\n{}", hex_dump(input, None));
    let want_verdict = match want {
        Want::Pass(_) | Want::Translated | Want::Untouched => hook.pass(),
        Want::Drop => hook.drop(),
    };
    assert_eq!(
        out.verdict,
        want_verdict,
        "verdict {} but expected {}; {}\n--- output:\n{}",
        hook.verdict_name(out.verdict),
        hook.verdict_name(want_verdict),
        ctx(),
        hex_dump(&out.data, None)
    );
    match want {
        Want::Pass(expected) => assert_frame_eq(&ctx(), &out.data, expected),
        Want::Untouched => assert_frame_eq(&ctx(), &out.data, input),
        Want::Translated | Want::Drop => {}
    }
    if matches!(want, Want::Pass(_) | Want::Translated)
        && let Err(e) = check_checksums(&out.data)
    {
        panic!("{}: output: {e}\n{}", ctx(), hex_dump(&out.data, None));
    }
    assert_deltas(&ctx(), &before, &after, deltas);
    out.data
}

/// [`run`], then asserts the NAPT state (mappings, sessions, filters, ...)
/// is exactly as before: for packets that are refused, passed, or are ICMP
/// errors, none of which may create or refresh anything.
#[track_caller]
fn run_stateless(
    n: &Napt,
    hook: Hook,
    what: &str,
    input: &[u8],
    want: Want,
    deltas: &[(Counter, u64)],
) {
    let before = n.state();
    run(n, hook, what, input, want, deltas);
    assert_eq!(n.state(), before, "{what} via {hook:?}: changed NAPT state");
}

// ---------------------------------------------------------------- counter sets

fn egress_new(bytes: u64) -> Deltas {
    vec![
        (Counter::EgressTranslated, 1),
        (Counter::EgressBytes, bytes),
        (Counter::NaptMappingsCreated, 1),
        (Counter::NaptSessionsCreated, 1),
    ]
}

fn egress_new_session(bytes: u64) -> Deltas {
    vec![
        (Counter::EgressTranslated, 1),
        (Counter::EgressBytes, bytes),
        (Counter::NaptSessionsCreated, 1),
    ]
}

fn egress_known(bytes: u64) -> Deltas {
    vec![
        (Counter::EgressTranslated, 1),
        (Counter::EgressBytes, bytes),
    ]
}

fn ingress_known(bytes: u64) -> Deltas {
    vec![
        (Counter::IngressTranslated, 1),
        (Counter::IngressBytes, bytes),
    ]
}

fn ingress_new_session(bytes: u64) -> Deltas {
    vec![
        (Counter::IngressTranslated, 1),
        (Counter::IngressBytes, bytes),
        (Counter::NaptSessionsCreated, 1),
    ]
}

fn icmp_error_in(bytes: u64) -> Deltas {
    vec![
        (Counter::IngressTranslated, 1),
        (Counter::IngressBytes, bytes),
        (Counter::IcmpErrorsTranslated, 1),
    ]
}

fn icmp_error_out(bytes: u64) -> Deltas {
    vec![
        (Counter::EgressTranslated, 1),
        (Counter::EgressBytes, bytes),
        (Counter::IcmpErrorsTranslated, 1),
    ]
}

fn only(c: Counter) -> Deltas {
    vec![(c, 1)]
}

// ---------------------------------------------------------------- packets

/// The identifier of an ICMP query.
fn icmp_id(m: &Icmp) -> u16 {
    u16::from_be_bytes([m.rest[0], m.rest[1]])
}

/// The source endpoint of `p` (source port, or ICMP identifier).
fn src_ep(p: &Packet) -> Endpoint {
    match &p.l4 {
        L4::Tcp(t) => Endpoint::new(p.ip.src, t.sport, TCP),
        L4::Udp(u) => Endpoint::new(p.ip.src, u.sport, UDP),
        L4::Icmp(m) => Endpoint::new(p.ip.src, icmp_id(m), ICMP),
        L4::Raw { proto, .. } => Endpoint::new(p.ip.src, 0, *proto),
    }
}

/// `p` with its source address and port (ICMP: identifier) replaced.
fn with_src(p: &Packet, to: Endpoint) -> Packet {
    let mut q = p.clone();
    q.ip.src = to.addr;
    match &mut q.l4 {
        L4::Tcp(t) => t.sport = to.port,
        L4::Udp(u) => u.sport = to.port,
        L4::Icmp(m) => m.rest[..2].copy_from_slice(&to.port.to_be_bytes()),
        L4::Raw { .. } => {}
    }
    q
}

/// `p` with its destination address and port (ICMP: identifier) replaced.
fn with_dst(p: &Packet, to: Endpoint) -> Packet {
    let mut q = p.clone();
    q.ip.dst = to.addr;
    match &mut q.l4 {
        L4::Tcp(t) => t.dport = to.port,
        L4::Udp(u) => u.dport = to.port,
        L4::Icmp(m) => m.rest[..2].copy_from_slice(&to.port.to_be_bytes()),
        L4::Raw { .. } => {}
    }
    q
}

fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Packet {
    Packet::udp(src, dst, Udp::new(sport, dport, b"napt datagram"))
}

fn syn(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Packet {
    Packet::tcp(src, dst, Tcp::syn(sport, dport))
}

/// A TCP segment with `flags` and a small payload.
fn seg(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Packet {
    let mut t = Tcp::data(sport, dport, b"seg");
    t.flags = flags;
    if flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) != 0 {
        t.payload.clear();
    }
    Packet::tcp(src, dst, t)
}

fn ping(src: Ipv4Addr, id: u16, dst: Ipv4Addr) -> Packet {
    Packet::icmp(src, dst, Icmp::echo_request(id, 1, b"abcdefghijklmnop"))
}

fn pong(src: Ipv4Addr, id: u16, dst: Ipv4Addr) -> Packet {
    Packet::icmp(src, dst, Icmp::echo_reply(id, 1, b"abcdefghijklmnop"))
}

// ---------------------------------------------------------------- state checks

/// Asserts `inside` is mapped to `public` with `flags`, and that NAPT_IN
/// mirrors it; returns both values.
#[track_caller]
fn assert_mapping(
    n: &Napt,
    inside: Endpoint,
    public: Endpoint,
    flags: u16,
) -> (Mapping, InsideEndpoint) {
    let out = n
        .napt_out(inside)
        .unwrap_or_else(|| panic!("no NAPT_OUT entry for {inside:?}"));
    assert_eq!(inside.of_mapping(&out), public, "NAPT_OUT[{inside:?}]");
    assert_eq!(out.flags, flags, "NAPT_OUT[{inside:?}].flags");
    let inb = n
        .napt_in(public)
        .unwrap_or_else(|| panic!("no NAPT_IN entry for {public:?} (mirror of {inside:?})"));
    assert_eq!(public.of_inside(&inb), inside, "NAPT_IN[{public:?}]");
    assert_eq!(inb.flags, flags, "NAPT_IN[{public:?}].flags");
    (out, inb)
}

/// Asserts a freshly created mapping: mirrored, flags 0, created ==
/// last_seen within [t0, t1] (the data plane clock), holding a live first
/// session seen at the same time.
#[track_caller]
fn assert_new_mapping(n: &Napt, inside: Endpoint, public: Endpoint, t0: u64, t1: u64) {
    let (out, _) = assert_mapping(n, inside, public, 0);
    assert!(
        clock_window(t0, t1).contains(&out.created),
        "created {} not within [{t0}, {t1}] (the data plane clock)",
        out.created
    );
    assert_eq!(
        out.last_seen, out.created,
        "NAPT_OUT last_seen of a new mapping"
    );
    assert_eq!(out.first.live, 1, "first session of a new mapping: {out:?}");
    assert_eq!(
        out.first.last_seen, out.created,
        "first session last_seen of a new mapping"
    );
}

#[track_caller]
fn session(n: &Napt, k: &SessionKey) -> Session {
    n.session(k)
        .unwrap_or_else(|| panic!("no session {k:?}; sessions: {:?}", n.sessions()))
}

/// The public endpoint of `inside` (panics if unmapped).
#[track_caller]
fn public_of(n: &Napt, inside: Endpoint) -> Endpoint {
    n.public_of(inside)
        .unwrap_or_else(|| panic!("{inside:?} has no mapping"))
}

/// Occupies public endpoint `public` with a NAPT_IN entry of somebody else.
fn occupy(n: &mut Napt, public: Endpoint) {
    let owner = Endpoint::new(OCCUPANT, public.port, public.proto);
    n.put_napt_in(public, owner.as_inside(0));
}

/// [`napt`] with `public` occupied, so that the inside endpoint with the
/// same port gets another public port.
fn napt_occupying(public: Endpoint) -> Napt {
    let mut n = napt();
    occupy(&mut n, public);
    n
}

/// Sends `p` (the first packet of its inside endpoint) out, expects a new
/// mapping, checks the output against `p` rewritten to the allocated
/// public endpoint and returns that endpoint.
#[track_caller]
fn egress_first(n: &Napt, what: &str, p: &Packet) -> Endpoint {
    let inside = src_ep(p);
    assert!(
        n.napt_out(inside).is_none(),
        "{what}: {inside:?} already mapped"
    );
    let t0 = dataplane_now_ns();
    let out = run(
        n,
        Hook::EgressTc,
        what,
        &p.frame(),
        Want::Translated,
        &egress_new(p.total_len()),
    );
    let t1 = dataplane_now_ns();
    let public = public_of(n, inside);
    assert_frame_eq(
        &format!("{what}: translated to {public:?}"),
        &out,
        &with_src(p, public).frame(),
    );
    assert_new_mapping(n, inside, public, t0, t1);
    public
}

/// Sends `p` out for an inside endpoint that is already mapped to
/// `public`; `new_session` says whether the remote is new.
#[track_caller]
fn egress_again(n: &Napt, what: &str, p: &Packet, public: Endpoint, new_session: bool) {
    let deltas = if new_session {
        egress_new_session(p.total_len())
    } else {
        egress_known(p.total_len())
    };
    run(
        n,
        Hook::EgressTc,
        what,
        &p.frame(),
        Want::Pass(&with_src(p, public).frame()),
        &deltas,
    );
}

/// Sends `p` (addressed to a public endpoint) in through `hook` and expects
/// it translated to `inside`.
#[track_caller]
fn ingress_to(
    n: &Napt,
    hook: Hook,
    what: &str,
    p: &Packet,
    inside: Endpoint,
    new_session: bool,
) -> Vec<u8> {
    let deltas = if new_session {
        ingress_new_session(p.total_len())
    } else {
        ingress_known(p.total_len())
    };
    run(
        n,
        hook,
        what,
        &p.frame(),
        Want::Pass(&with_dst(p, inside).frame()),
        &deltas,
    )
}

/// An instance per ingress program, each prepared by `setup`.
fn per_ingress_hook(setup: impl Fn() -> Napt, test: impl Fn(&mut Napt, Hook)) {
    for hook in Hook::INGRESS {
        let mut n = setup();
        test(&mut n, hook);
    }
}

// ================================================================ egress: new mappings

/// The first packet of an inside endpoint: port preserved, mapping pair,
/// its session held in the mapping as the first (nothing in SESSIONS), no
/// FILTER entry (address-dependent filtering is the default, but the first
/// session admits its own remote address), no HOST_PORTS entry without a
/// cap.
fn first_packet_case(p: &Packet, remote_port: u16, tcp_state: u8) {
    let n = napt();
    let inside = src_ep(p);
    let public = Endpoint::new(POOL, inside.port, inside.proto);
    let t0 = dataplane_now_ns();
    run(
        &n,
        Hook::EgressTc,
        "first packet",
        &p.frame(),
        Want::Pass(&with_src(p, public).frame()),
        &egress_new(p.total_len()),
    );
    let t1 = dataplane_now_ns();
    assert_new_mapping(&n, inside, public, t0, t1);
    let (out, _) = assert_mapping(&n, inside, public, 0);

    let sk = session_key(
        inside.proto,
        (inside.addr, inside.port),
        (p.ip.dst, remote_port),
    );
    let s = session(&n, &sk);
    assert_eq!(
        s,
        Session {
            created: s.created,
            last_seen: s.created,
            packets_out: 1,
            packets_in: 0,
            bytes_out: p.total_len(),
            bytes_in: 0,
            public_addr: be(POOL),
            public_port: inside.port.to_be(),
            tcp: tcp_state,
            flags: 0,
        },
        "session {sk:?}"
    );
    assert!(
        clock_window(t0, t1).contains(&s.created),
        "session created {}",
        s.created
    );
    assert_eq!(
        out.created, s.created,
        "mapping and session share the timestamp"
    );
    assert_eq!(n.sessions().len(), 1, "sessions: {:?}", n.sessions());
    assert!(n.is_first(&sk), "the session is not the mapping's first");
    assert_eq!(
        out.first,
        FirstSession {
            remote_addr: be(p.ip.dst),
            remote_port: remote_port.to_be(),
            tcp: tcp_state,
            live: 1,
            last_seen: out.created,
            packets_out: 1,
            packets_in: 0,
            bytes_out: p.total_len(),
            bytes_in: 0,
        },
        "first session in NAPT_OUT[{inside:?}]"
    );
    assert!(
        n.table_sessions().is_empty(),
        "SESSIONS: {:?}",
        n.table_sessions()
    );
    assert!(n.filter_all().is_empty(), "FILTER: {:?}", n.filter_all());

    let st = n.state();
    assert_eq!((st.out.len(), st.inb.len()), (1, 1), "one mapping pair");
    assert!(
        st.host_ports.is_empty(),
        "HOST_PORTS without a cap: {:?}",
        st.host_ports
    );
}

#[test]
fn egress_tcp_syn_creates_mapping() {
    first_packet_case(&syn(H1, 40000, R1, 443), 443, TCP_SYN_OUT);
}

#[test]
fn egress_udp_creates_mapping() {
    first_packet_case(&udp(H1, 5353, R1, 53), 53, 0);
}

#[test]
fn egress_icmp_echo_creates_mapping() {
    first_packet_case(&ping(H1, 0x1234, R1), 0, 0);
}

#[test]
fn egress_with_ip_options() {
    let n = napt();
    let p = udp(H1, 5000, R1, 53).with_ip_options(&OPT_IHL6);
    let public = egress_first(&n, "UDP with IP options", &p);
    assert_eq!(public, Endpoint::new(POOL, 5000, UDP));
    // And the reply with options.
    let reply = udp(R1, 53, POOL, 5000).with_ip_options(&OPT_IHL6);
    for hook in Hook::INGRESS {
        ingress_to(&n, hook, "reply with IP options", &reply, src_ep(&p), false);
    }
}

#[test]
fn mappings_are_per_protocol() {
    let n = napt();
    let u = egress_first(&n, "UDP 5000", &udp(H1, 5000, R1, 53));
    let t = egress_first(&n, "TCP 5000", &syn(H1, 5000, R1, 80));
    let i = egress_first(&n, "ICMP id 5000", &ping(H1, 5000, R1));
    assert_eq!(u, Endpoint::new(POOL, 5000, UDP));
    assert_eq!(t, Endpoint::new(POOL, 5000, TCP));
    assert_eq!(i, Endpoint::new(POOL, 5000, ICMP));
    // A TCP segment to the UDP mapping's port is not the UDP mapping's.
    let n = napt();
    egress_first(&n, "UDP 6000", &udp(H1, 6000, R1, 53));
    let stray = seg(R1, 53, POOL, 6000, tcp_flags::ACK);
    for hook in Hook::INGRESS {
        run(
            &n,
            hook,
            "TCP to a UDP mapping's port",
            &stray.frame(),
            Want::Untouched,
            &only(Counter::PassedNotOurs),
        );
    }
}

// ================================================================ EIM

/// The same inside endpoint talking to other remotes keeps its public
/// endpoint (RFC 4787 REQ-1, RFC 5382 REQ-1, RFC 5508 REQ-1a), also when
/// the public port differs from the inside port. Outbound packets refresh
/// the mapping.
#[test]
fn endpoint_independent_mapping() {
    type Mk = fn(Ipv4Addr, u16, Ipv4Addr, u16) -> Packet;
    let cases: [(&str, Mk); 3] = [
        ("UDP", udp),
        ("TCP", syn),
        ("ICMP", |s, id, d, _| ping(s, id, d)),
    ];
    for (name, mk) in cases {
        for collide in [false, true] {
            let mut n = napt();
            let first = mk(H1, 5000, R1, 53);
            let inside = src_ep(&first);
            if collide {
                occupy(&mut n, Endpoint::new(POOL, 5000, inside.proto));
            }
            let what = format!("{name} (collision: {collide})");
            let public = egress_first(&n, &what, &first);
            assert_eq!(public.port == 5000, !collide, "{what}: {public:?}");
            let icmp = inside.proto == ICMP;
            // Same remote address, other port (ICMP: same remote again).
            let others = [(R1, 54), (R2, 53), (R2, 123)];
            for (i, (raddr, rport)) in others.into_iter().enumerate() {
                n.set_mapping_last_seen(inside, 1);
                let t0 = dataplane_now_ns();
                let p = mk(H1, 5000, raddr, rport);
                // ICMP sessions are per remote address: R1 is known, R2
                // is new once.
                let new_session = !icmp || i == 1;
                egress_again(
                    &n,
                    &format!("{what} to {raddr}:{rport}"),
                    &p,
                    public,
                    new_session,
                );
                let t1 = dataplane_now_ns();
                let (out, _) = assert_mapping(&n, inside, public, 0);
                assert!(
                    clock_window(t0, t1).contains(&out.last_seen),
                    "{what}: outbound packet did not refresh the mapping (last_seen {})",
                    out.last_seen
                );
            }
            let st = n.state();
            assert_eq!(st.out.len(), 1, "{what}: one mapping: {:?}", st.out);
            let want_sessions = if icmp { 2 } else { 4 };
            assert_eq!(
                st.sessions().len(),
                want_sessions,
                "{what}: sessions {:?}",
                st.sessions()
            );
            // The first one in the mapping, the others in SESSIONS.
            let m = st.out[0].1;
            assert!(m.first_is(be(R1), 53u16.to_be()) || icmp && m.first_is(be(R1), 0));
            assert_eq!(
                st.session_table.len(),
                want_sessions - 1,
                "{what}: SESSIONS {:?}",
                st.session_table
            );
            assert_eq!(n.counter(Counter::NaptMappingsCreated), 1, "{what}");
        }
    }
}

/// Paired pooling (RFC 4787 REQ-2): with four pool addresses every inside
/// host gets one public address for all its mappings, and the pool is used.
#[test]
fn paired_pooling() {
    let n = Napt::with(&POOL4, &[INSIDE_NET], |_| {});
    let mut used = BTreeSet::new();
    for h in 2..34u8 {
        let host = Ipv4Addr::new(10, 0, 0, h);
        let a = egress_first(&n, "UDP", &udp(host, 5000, R1, 53));
        let b = egress_first(&n, "TCP", &syn(host, 6000, R2, 443));
        let c = egress_first(&n, "ICMP", &ping(host, 7000, R1));
        let d = egress_first(&n, "UDP other port", &udp(host, 5001, R2, 53));
        assert!(POOL4.contains(&a.addr), "{host}: {a:?} not in the pool");
        for other in [b, c, d] {
            assert_eq!(
                other.addr, a.addr,
                "{host}: mappings on different pool addresses"
            );
        }
        used.insert(a.addr);
    }
    assert!(
        used.len() > 1,
        "32 hosts all on one of four pool addresses: {used:?}"
    );
}

/// A new binding writes nothing to `HOST_POOL` (the hash over the pool is
/// the host's address) — except while a pool change is being applied
/// (`PINNED_RECORDING`): then the data plane pins each host it maps to the
/// address it gave it, so none slips between the agent's pinning passes.
#[test]
fn host_pool_is_written_only_while_a_pool_change_records() {
    let mut n = Napt::with(&POOL4, &[INSIDE_NET], |_| {});
    let host_pool = |n: &Napt| xnat_tests::bpf::all(n.ebpf(), LoadedRef::host_pool);
    egress_first(&n, "a new host, not recording", &udp(H1, 5000, R1, 53));
    assert_eq!(host_pool(&n), [], "HOST_POOL written outside a pool change");
    n.update_config(|c| c.pinned_hosts = PINNED_RECORDING);
    let b = egress_first(&n, "a new host, recording", &udp(H2, 5000, R1, 53));
    assert_eq!(
        host_pool(&n),
        [(be(H2), be(b.addr))],
        "the host mapped while recording is pinned to its address"
    );
}

/// Paired pooling survives a reload that grows the pool: a host keeps the
/// address its first mapping got (`HOST_POOL`) for every later mapping,
/// although the hash over the larger pool now points elsewhere; a host
/// seen for the first time gets the hash's choice over the whole pool; a
/// host whose address left the pool gets the hash's choice too.
#[test]
fn paired_pooling_survives_pool_growth() {
    let mut n = Napt::with(&POOL4[..1], &[INSIDE_NET], |_| {});
    // Hosts the larger pool's hash sends to another address than the
    // first one (the test could not fail with a host it keeps on slot 0).
    let moved: Vec<Ipv4Addr> = (2..40u8)
        .map(|h| Ipv4Addr::new(10, 0, 0, h))
        .filter(|h| nat_common::pool_index(be(*h), 4) != 0)
        .take(3)
        .collect();
    let (old, fresh) = (&moved[..2], moved[2]);
    for h in old {
        let a = egress_first(&n, "before the pool grows", &udp(*h, 5000, R1, 53));
        assert_eq!(a.addr, POOL4[0], "{h}");
    }
    n.set_pool(&POOL4);
    for h in old {
        let b = egress_first(&n, "after the pool grew", &syn(*h, 6000, R2, 443));
        assert_eq!(b.addr, POOL4[0], "{h}: moved to another pool address");
    }
    let want = POOL4[nat_common::pool_index(be(fresh), 4) as usize];
    let c = egress_first(&n, "a new host", &udp(fresh, 5000, R1, 53));
    assert_eq!(c.addr, want, "{fresh}: not the hash's choice");
    // The first address leaves the pool: its hosts follow the hash.
    n.set_pool(&POOL4[1..]);
    let h = old[0];
    let want = POOL4[1 + nat_common::pool_index(be(h), 3) as usize];
    let d = egress_first(&n, "after its address left", &udp(h, 5001, R1, 53));
    assert_eq!(d.addr, want, "{h}: not the hash's choice over the new pool");
}

// ================================================================ port choice

/// A preferred port taken by another mapping: another port with the same
/// parity and range; the reply to it reaches the inside endpoint.
#[test]
fn collision_picks_another_port_and_reply_comes_back() {
    let setup = || napt_occupying(Endpoint::new(POOL, 5000, UDP));
    per_ingress_hook(setup, |n, hook| {
        let p = udp(H1, 5000, R1, 53);
        let public = egress_first(n, "UDP 5000 with 5000 taken", &p);
        assert_ne!(public.port, 5000);
        assert_eq!(public.port % 2, 0, "parity of {public:?}");
        assert!(public.port >= 1024, "range of {public:?}");
        // The occupant is untouched.
        let occ = n.napt_in(Endpoint::new(POOL, 5000, UDP)).unwrap();
        assert_eq!(occ.addr, be(OCCUPANT));
        ingress_to(
            n,
            hook,
            "reply",
            &udp(R1, 53, public.addr, public.port),
            src_ep(&p),
            false,
        );
    });
}

/// Many inside hosts with the same source port: the first keeps it, the
/// rest get distinct ports of the same parity and range class.
#[test]
fn fifty_hosts_same_port_keep_parity_and_range() {
    // (what, protocol, inside port, lowest port of --ports, expected range)
    type Case = (&'static str, u8, u16, u16, (u16, u16));
    let cases: [Case; 5] = [
        ("UDP even", UDP, 5000, 1024, (1024, 65535)),
        ("TCP odd", TCP, 40001, 1024, (1024, 65535)),
        ("UDP low even", UDP, 500, 1, (1, 1023)),
        ("TCP low odd", TCP, 993, 1, (1, 1023)),
        ("ICMP identifier", ICMP, 3000, 1024, (1024, 65535)),
    ];
    for (what, proto_, port, port_min, (lo, hi)) in cases {
        let n = napt_with(|c| c.port_min = port_min);
        let mut seen = HashSet::new();
        for h in 1..=50u8 {
            let host = Ipv4Addr::new(10, 0, 1, h);
            let p = match proto_ {
                UDP => udp(host, port, R1, 53),
                TCP => syn(host, port, R1, 443),
                _ => ping(host, port, R1),
            };
            let public = egress_first(&n, &format!("{what}: host {host}"), &p);
            assert_eq!(public.addr, POOL);
            if h == 1 {
                assert_eq!(public.port, port, "{what}: the first host keeps its port");
            }
            if proto_ != ICMP {
                assert_eq!(public.port % 2, port % 2, "{what}: parity of {public:?}");
            }
            assert!(
                (lo..=hi).contains(&public.port),
                "{what}: {public:?} outside {lo}-{hi}"
            );
            assert!(
                seen.insert(public.port),
                "{what}: port {} handed out twice",
                public.port
            );
        }
        let st = n.state();
        assert_eq!((st.out.len(), st.inb.len()), (50, 50), "{what}");
        for (k, m) in &st.out {
            let inside = Endpoint::from_key(k);
            assert_mapping(&n, inside, inside.of_mapping(m), 0);
        }
    }
}

/// A source port outside --ports moves into it (parity kept); one inside
/// the range is kept.
#[test]
fn port_outside_range_moves_into_range() {
    let n = napt_with(|c| {
        c.port_min = 20000;
        c.port_max = 20099;
    });
    let a = egress_first(&n, "UDP 5000", &udp(H1, 5000, R1, 53));
    assert!(
        (20000..=20099).contains(&a.port) && a.port.is_multiple_of(2),
        "{a:?}"
    );
    let b = egress_first(&n, "TCP 40001", &syn(H1, 40001, R1, 443));
    assert!(
        (20000..=20099).contains(&b.port) && b.port % 2 == 1,
        "{b:?}"
    );
    let c = egress_first(&n, "ICMP id 7", &ping(H1, 7, R1));
    assert!((20000..=20099).contains(&c.port), "{c:?}");
    let d = egress_first(&n, "UDP 20051", &udp(H1, 20051, R1, 53));
    assert_eq!(d.port, 20051);
}

/// --ports with two ports, both in use: the next new mapping is dropped,
/// counted, and reported in EVENTS with the offending IP header + 8 bytes
/// (for the agent's ICMP code 13).
#[test]
fn ports_exhausted_drops_and_reports() {
    let mut n = napt_with(|c| {
        c.port_min = 30000;
        c.port_max = 30001;
    });
    egress_first(&n, "H1 30000", &udp(H1, 30000, R1, 53));
    egress_first(&n, "H2 30001", &udp(H2, 30001, R1, 53));
    assert!(n.events().is_empty(), "events before exhaustion");

    for (what, p) in [
        ("UDP", udp(H3, 30000, R1, 53)),
        ("TCP SYN", syn(H3, 30001, R1, 443)),
        ("ICMP echo", ping(H3, 30000, R1)),
    ] {
        // TCP and ICMP have their own port spaces: fill them first.
        if p.l4.proto() != UDP {
            let pr = p.l4.proto();
            occupy(&mut n, Endpoint::new(POOL, 30000, pr));
            occupy(&mut n, Endpoint::new(POOL, 30001, pr));
        }
        run_stateless(
            &n,
            Hook::EgressTc,
            what,
            &p.frame(),
            Want::Drop,
            &only(Counter::DropPortsExhausted),
        );
        let ev = n.events();
        assert_eq!(ev.len(), 1, "{what}: events {ev:?}");
        let e = &ev[0];
        assert_eq!(e.kind, EVENT_PORTS_EXHAUSTED, "{what}");
        assert_eq!(e.record_len, size_of::<Event>(), "{what}: record size");
        assert_eq!(
            e.public_addr,
            be(POOL),
            "{what}: the exhausted pool address"
        );
        assert_eq!(e.quote_len, 28, "{what}: quote length");
        assert_eq!(e.quoted(), &p.ip_bytes()[..28], "{what}: quote");
        assert!(
            e.quote[28..].iter().all(|&b| b == 0),
            "{what}: bytes after the quote"
        );
    }
}

/// The exhaustion event of a datagram with IP options quotes the whole
/// header + 8 bytes, even when the packet is shorter than the largest
/// possible quote (68 bytes).
#[test]
fn ports_exhausted_event_with_ip_options() {
    let mut n = napt_with(|c| {
        c.port_min = 30000;
        c.port_max = 30000;
    });
    egress_first(&n, "H1 30000", &udp(H1, 30000, R1, 53));
    let cases = [
        (
            "short UDP, IHL 6",
            Packet::udp(H2, R1, Udp::new(30000, 53, b"x")).with_ip_options(&OPT_IHL6),
        ),
        (
            "UDP, IHL 6, 68 bytes or more",
            Packet::udp(H2, R1, Udp::new(30000, 53, &[7; 40])).with_ip_options(&OPT_IHL6),
        ),
    ];
    for (what, p) in cases {
        run(
            &n,
            Hook::EgressTc,
            what,
            &p.frame(),
            Want::Drop,
            &only(Counter::DropPortsExhausted),
        );
        let ev = n.events();
        assert_eq!(
            ev.len(),
            1,
            "{what}: expected one EVENTS record, got {ev:?}"
        );
        assert_eq!(ev[0].kind, EVENT_PORTS_EXHAUSTED);
        assert_eq!(ev[0].quote_len, 32, "{what}");
        assert_eq!(ev[0].quoted(), &p.ip_bytes()[..32], "{what}");
    }
    const { assert!(EVENT_QUOTE_MAX >= 68) };
}

/// --max-ports-per-host: HOST_PORTS counts a host's mappings; at the cap a
/// new mapping is refused (existing ones keep working, other hosts too).
#[test]
fn max_ports_per_host() {
    let n = napt_with(|c| c.max_ports_per_host = 2);
    egress_first(&n, "first port", &udp(H1, 5000, R1, 53));
    assert_eq!(n.host_ports(H1), Some(1));
    egress_first(&n, "second port", &syn(H1, 5001, R1, 443));
    assert_eq!(n.host_ports(H1), Some(2));
    for (what, p) in [
        ("third port (UDP)", udp(H1, 5002, R1, 53)),
        ("third port (ICMP)", ping(H1, 77, R1)),
    ] {
        run_stateless(
            &n,
            Hook::EgressTc,
            what,
            &p.frame(),
            Want::Drop,
            &only(Counter::DropHostPortCap),
        );
    }
    // Existing mappings still carry traffic, to new remotes too.
    egress_again(
        &n,
        "first port to another remote",
        &udp(H1, 5000, R2, 53),
        Endpoint::new(POOL, 5000, UDP),
        true,
    );
    // Another host is not affected.
    egress_first(&n, "other host", &udp(H2, 5002, R1, 53));
    assert_eq!(n.host_ports(H2), Some(1));
    assert_eq!(n.host_ports(H1), Some(2));
}

/// A refusal at the cap is an event only while the agent asks for it
/// (it does while exporting IPFIX): the host's packet quoted, the cap and
/// the host's pool address.
#[test]
fn host_cap_event_only_when_asked() {
    let mut n = napt_with(|c| c.max_ports_per_host = 1);
    egress_first(&n, "first port", &udp(H1, 5000, R1, 53));
    let p = udp(H1, 5001, R1, 53);
    let refuse = |n: &Napt, what: &str| {
        run_stateless(
            n,
            Hook::EgressTc,
            what,
            &p.frame(),
            Want::Drop,
            &only(Counter::DropHostPortCap),
        )
    };
    refuse(&n, "not asked");
    assert!(n.events().is_empty(), "an event nobody asked for");
    n.want_events(&[EVENT_HOST_CAP]);
    refuse(&n, "asked");
    let ev = n.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].kind, EVENT_HOST_CAP);
    assert_eq!(ev[0].limit, 1);
    assert_eq!(ev[0].public_addr, be(POOL));
    assert_eq!(ev[0].quoted(), &p.ip_bytes()[..28]);
}

/// A full mapping table refuses new mappings and counts it; the public
/// port reserved for the attempt is released. Existing mappings work.
#[test]
fn mapping_table_full() {
    let filler = |i: u32| EndpointKey {
        addr: i,
        port: 0,
        proto: 99,
        _pad: 0,
    };
    for table in [MAP_NAPT_OUT, MAP_NAPT_IN] {
        let mut n = napt();
        let known = egress_first(&n, "before the table fills", &udp(H1, 5000, R1, 53));
        let added = if table == MAP_NAPT_OUT {
            n.fill(Loaded::napt_out, u32::MAX, filler, Mapping::default())
        } else {
            n.fill(Loaded::napt_in, u32::MAX, filler, InsideEndpoint::default())
        };
        assert!(added > 1000, "{table}: only {added} entries went in");
        let before = n.state();
        run(
            &n,
            Hook::EgressTc,
            &format!("new mapping with {table} full"),
            &udp(H2, 5000, R1, 53).frame(),
            Want::Drop,
            &only(Counter::DropMappingTableFull),
        );
        assert!(n.napt_out(Endpoint::new(H2, 5000, UDP)).is_none());
        let after = n.state();
        assert_eq!(
            after.inb.len(),
            before.inb.len(),
            "{table}: a NAPT_IN reservation leaked"
        );
        assert_eq!(
            after.out.len(),
            before.out.len(),
            "{table}: NAPT_OUT changed"
        );
        egress_again(&n, "known mapping", &udp(H1, 5000, R1, 53), known, false);
    }
}

/// Block allocation with `NAPT_IN` full: a host whose block has free
/// ports meets the full table at its first reservation there and is
/// refused as "mapping table full", as under dynamic allocation, neither
/// claiming a block it cannot use (below its cap) nor being counted as
/// capped (at it). Found by the fuzzer.
#[test]
fn block_allocation_meeting_a_full_napt_in_claims_no_block() {
    let filler = |i: u32| EndpointKey {
        addr: i,
        port: 0,
        proto: 99,
        _pad: 0,
    };
    for max_blocks in [1, 2] {
        let mut n = napt_with(|c| {
            c.allocation = blocks::ALLOCATION_BLOCK;
            c.block_size = 64;
            c.max_blocks_per_host = max_blocks;
        });
        let first = udp(H1, 5000, R1, 53);
        let mut claimed = egress_new(first.total_len());
        claimed.push((Counter::NaptBlocksAllocated, 1));
        run(
            &n,
            Hook::EgressTc,
            "the host's first mapping, claiming its block",
            &first.frame(),
            Want::Translated,
            &claimed,
        );
        let added = n.fill(Loaded::napt_in, u32::MAX, filler, InsideEndpoint::default());
        assert!(added > 1000, "only {added} entries went into NAPT_IN");
        let lists = |n: &Napt| {
            (
                xnat_tests::bpf::all(n.ebpf(), LoadedRef::blocks),
                xnat_tests::bpf::all(n.ebpf(), LoadedRef::host_blocks),
            )
        };
        let before = lists(&n);
        assert_eq!((before.0.len(), before.1.len()), (1, 1), "{before:?}");
        run(
            &n,
            Hook::EgressTc,
            &format!("a second mapping with NAPT_IN full, cap {max_blocks}"),
            &udp(H1, 5001, R1, 53).frame(),
            Want::Drop,
            &only(Counter::DropMappingTableFull),
        );
        assert_eq!(lists(&n), before, "cap {max_blocks}: blocks changed");
        assert!(n.napt_out(Endpoint::new(H1, 5001, UDP)).is_none());
    }
}

/// A full session table refuses new sessions beyond a mapping's first and
/// counts it; existing sessions keep working, and new mappings too (their
/// first session is held in the mapping).
#[test]
fn session_table_full() {
    let mut n = napt();
    let public = egress_first(&n, "before the table fills", &udp(H1, 5000, R1, 53));
    let filler = |i: u32| SessionKey {
        inside_addr: i,
        remote_addr: 0,
        inside_port: 0,
        remote_port: 0,
        proto: 99,
        _pad: [0; 3],
    };
    let added = n.fill(Loaded::sessions, u32::MAX, filler, Session::default());
    assert!(added > 1000, "only {added} sessions went in");
    let before = n.state();
    run(
        &n,
        Hook::EgressTc,
        "new session with SESSIONS full",
        &udp(H1, 5000, R2, 53).frame(),
        Want::Drop,
        &only(Counter::DropSessionTableFull),
    );
    assert_eq!(n.state(), before, "a refused session changed NAPT state");
    egress_again(
        &n,
        "existing session",
        &udp(H1, 5000, R1, 53),
        public,
        false,
    );
    // Inbound from a remote the filter admits (R1, another port): refused
    // too, it would need a SESSIONS entry.
    for hook in Hook::INGRESS {
        run(
            &n,
            hook,
            "new inbound session with SESSIONS full",
            &udp(R1, 54, POOL, 5000).frame(),
            Want::Drop,
            &only(Counter::DropSessionTableFull),
        );
    }
    let p = udp(H2, 6000, R2, 53);
    let other = egress_first(&n, "new mapping with SESSIONS full", &p);
    assert!(n.is_first(&session_key(UDP, (H2, 6000), (R2, 53))));
    ingress_to(
        &n,
        Hook::IngressXdp,
        "reply to the new mapping",
        &udp(R2, 53, other.addr, other.port),
        src_ep(&p),
        false,
    );
    assert_eq!(n.table_sessions().len(), before.session_table.len());
}

// ================================================================ ingress and filtering

/// One filtering mode: after H1:5000 → R1:53 (UDP), or the TCP or ICMP
/// equivalent, which remotes reach H1?
fn filtering_case(mode: Filtering, proto_: u8, admitted: [bool; 3]) {
    let remotes = [
        (R1, 53, "same remote"),
        (R1, 9999, "same address, other port"),
        (R2, 53, "other address"),
    ];
    let setup = || {
        let mut n = napt_with(|c| c.filtering = mode.code());
        // A public port different from the inside port, to see it rewritten.
        occupy(&mut n, Endpoint::new(POOL, 5000, proto_));
        n
    };
    per_ingress_hook(setup, |n, hook| {
        let first = match proto_ {
            UDP => udp(H1, 5000, R1, 53),
            TCP => syn(H1, 5000, R1, 53),
            _ => ping(H1, 5000, R1),
        };
        let inside = src_ep(&first);
        let public = egress_first(n, "first packet", &first);
        // In every mode: the first session admits its own remote address,
        // it needs no FILTER entry.
        assert!(n.filter_all().is_empty(), "FILTER written in mode {mode:?}");
        for ((raddr, rport, name), ok) in remotes.into_iter().zip(admitted) {
            if proto_ == ICMP && rport != 53 {
                continue; // ICMP has no remote port
            }
            let p = match proto_ {
                UDP => udp(raddr, rport, public.addr, public.port),
                TCP => seg(raddr, rport, public.addr, public.port, tcp_flags::ACK),
                _ => pong(raddr, public.port, public.addr),
            };
            let what = format!("mode {mode:?}, proto {proto_}: {name} {raddr}:{rport}");
            if ok {
                let new_session = raddr != R1 || rport != 53;
                ingress_to(n, hook, &what, &p, inside, new_session);
            } else {
                run_stateless(
                    n,
                    hook,
                    &what,
                    &p.frame(),
                    Want::Drop,
                    &only(Counter::DropFiltered),
                );
            }
        }
        // Inbound packets never write FILTER; admitted new remotes got
        // SESSIONS entries, the first session stayed R1's.
        assert!(
            n.filter_all().is_empty(),
            "mode {mode:?}: {:?}",
            n.filter_all()
        );
        let rport = if proto_ == ICMP { 0 } else { 53 };
        assert!(n.is_first(&session_key(
            proto_,
            (inside.addr, inside.port),
            (R1, rport)
        )));
        let admitted_new = admitted[1..]
            .iter()
            .zip([9999, 53])
            .filter(|(ok, rp)| **ok && !(proto_ == ICMP && *rp != 53))
            .count();
        assert_eq!(
            n.table_sessions().len(),
            admitted_new,
            "mode {mode:?}: SESSIONS {:?}",
            n.table_sessions()
        );
    });
}

#[test]
fn filtering_endpoint_independent() {
    for p in [UDP, TCP, ICMP] {
        filtering_case(Filtering::EndpointIndependent, p, [true, true, true]);
    }
}

#[test]
fn filtering_address_dependent() {
    for p in [UDP, TCP, ICMP] {
        filtering_case(Filtering::Address, p, [true, true, false]);
    }
}

#[test]
fn filtering_address_and_port_dependent() {
    for p in [UDP, TCP, ICMP] {
        filtering_case(Filtering::AddressAndPort, p, [true, false, false]);
    }
}

/// The default configuration filters by address.
#[test]
fn default_filtering_is_address_dependent() {
    assert_eq!(
        Filtering::from_code(xnat_tests::napt_maps::default_config().filtering),
        Some(Filtering::Address)
    );
}

/// Traffic to the pool that no mapping owns goes to the stack untouched.
#[test]
fn unknown_public_port_passes_untouched() {
    let mut n = napt();
    egress_first(&n, "UDP 5000", &udp(H1, 5000, R1, 53));
    egress_first(&n, "ICMP id 5000", &ping(H1, 5000, R1));
    // A public port reserved in NAPT_IN whose NAPT_OUT entry is not there
    // (another CPU is creating the mapping): not ours yet.
    occupy(&mut n, Endpoint::new(POOL, 5003, UDP));
    let cases = [
        ("UDP to an unmapped port", udp(R1, 53, POOL, 5001)),
        (
            "UDP to a port reserved mid-allocation",
            udp(R1, 53, POOL, 5003),
        ),
        ("TCP SYN to an unmapped port", syn(R1, 40000, POOL, 22)),
        ("echo request to the pool address", ping(R1, 5000, POOL)),
        ("echo reply with an unmapped id", pong(R1, 5001, POOL)),
        ("UDP to a non-pool address", udp(R1, 53, R2, 5000)),
    ];
    for hook in Hook::INGRESS {
        for (what, p) in &cases {
            run_stateless(
                &n,
                hook,
                what,
                &p.frame(),
                Want::Untouched,
                &only(Counter::PassedNotOurs),
            );
        }
    }
}

/// A reply to a mapping whose public port (ICMP: identifier) is not the
/// inside one, the inside one being taken in the pool.
struct ReplyCase {
    name: &'static str,
    /// What the inside endpoint sends first.
    out: Packet,
    /// The reply from outside, given the public port.
    back: fn(u16) -> Packet,
    /// Bytes the translated reply must hold from a frame offset on (a
    /// checksum that needs care), besides matching its expected frame.
    pinned: Option<(usize, &'static [u8])>,
}

/// The reply reaches the inside endpoint with its own port (identifier)
/// and a valid checksum, through each ingress program.
#[test]
fn replies_to_a_moved_public_port_translated() {
    let cases = [
        ReplyCase {
            name: "icmp_echo_reply_translated",
            out: ping(H1, 0x1234, R1),
            back: |public| pong(R1, public, POOL),
            pinned: None,
        },
        // A message all zero once translated (identifier 0, sequence 0, no
        // data) gets checksum 0xffff, the only value that verifies there;
        // the incremental update alone gives 0x0000 (fuzz seed 1).
        ReplyCase {
            name: "icmp_echo_reply_summing_to_zero_gets_ffff",
            out: Packet::icmp(H1, R1, Icmp::echo_request(0, 0, b"")),
            back: |public| Packet::icmp(R1, POOL, Icmp::echo_reply(public, 0, b"")),
            pinned: Some((ETH_HLEN + 20, &[0, 0, 0xff, 0xff, 0, 0, 0, 0])),
        },
        // UDP without checksum keeps 0 both ways.
        ReplyCase {
            name: "udp_zero_checksum_stays_zero",
            out: Packet::udp(
                H1,
                R1,
                Udp::new(5000, 53, b"no checksum").without_checksum(),
            ),
            back: |public| Packet::udp(R1, POOL, Udp::new(53, public, b"reply").without_checksum()),
            pinned: Some((ETH_HLEN + 26, &[0, 0])),
        },
    ];
    for c in &cases {
        let inside = src_ep(&c.out);
        let setup = || napt_occupying(Endpoint::new(POOL, inside.port, inside.proto));
        per_ingress_hook(setup, |n, hook| {
            let public = egress_first(n, &format!("{}: first packet", c.name), &c.out);
            assert_ne!(public.port, inside.port, "{}", c.name);
            let what = format!("{}: reply", c.name);
            let got = ingress_to(n, hook, &what, &(c.back)(public.port), inside, false);
            if let Some((at, bytes)) = c.pinned {
                assert_eq!(got[at..at + bytes.len()], *bytes, "{what} via {hook:?}");
            }
        });
    }
}

/// A UDP checksum that computes to 0 after translation is sent as 0xffff.
#[test]
fn udp_checksum_computing_to_zero_is_ffff() {
    let payload = b"zero?";
    let zero_after = |from: Ipv4Addr, to: Ipv4Addr, outbound: bool| {
        (1024..=u16::MAX)
            .find(|&port| {
                let p = if outbound {
                    Packet::udp(to, R1, Udp::new(port, 53, payload))
                } else {
                    Packet::udp(R1, to, Udp::new(53, port, payload))
                };
                let orig = if outbound {
                    Packet::udp(from, R1, Udp::new(port, 53, payload))
                } else {
                    Packet::udp(R1, from, Udp::new(53, port, payload))
                };
                p.l4_bytes()[6..8] == [0xff, 0xff] && orig.l4_bytes()[6..8] != [0xff, 0xff]
            })
            .expect("a port whose translated checksum is 0xffff")
    };
    let n = napt();
    let port = zero_after(H1, POOL, true);
    let p = Packet::udp(H1, R1, Udp::new(port, 53, payload));
    let public = egress_first(&n, "UDP whose translated checksum is 0", &p);
    assert_eq!(public.port, port);
    let port = zero_after(POOL, H2, false);
    let n = napt();
    let p = Packet::udp(H2, R1, Udp::new(port, 53, payload));
    egress_first(&n, "mapping", &p);
    let back = Packet::udp(R1, POOL, Udp::new(53, port, payload));
    for hook in Hook::INGRESS {
        ingress_to(
            &n,
            hook,
            "reply whose translated checksum is 0",
            &back,
            src_ep(&p),
            false,
        );
    }
}

// ================================================================ TCP state

/// SYN out, SYN-ACK in, ACK out, data in, FIN out, data in, FIN in: the
/// session's RFC 6146 state after each, with the public port differing
/// from the inside port so both checksums see a port change.
#[test]
fn tcp_state_handshake_established_fin() {
    let setup = || napt_occupying(Endpoint::new(POOL, 40000, TCP));
    per_ingress_hook(setup, |n, hook| {
        use tcp_flags::{ACK, FIN, PSH, SYN};
        let first = syn(H1, 40000, R1, 443);
        let inside = src_ep(&first);
        let public = egress_first(n, "SYN", &first);
        let sk = session_key(TCP, (H1, 40000), (R1, 443));
        let check = |what: &str, state: u8| {
            let s = session(n, &sk);
            assert_eq!(
                tcp_state_name(s.tcp),
                tcp_state_name(state),
                "{what}: TCP state"
            );
        };
        check("SYN out", TCP_SYN_OUT);
        let from_remote = |what: &str, flags: u8| {
            ingress_to(
                n,
                hook,
                what,
                &seg(R1, 443, POOL, public.port, flags),
                inside,
                false,
            )
        };
        from_remote("SYN-ACK", SYN | ACK);
        // RFC 6146: a SYN each way is enough.
        check("SYN-ACK in", TCP_ESTABLISHED);
        egress_again(n, "ACK", &seg(H1, 40000, R1, 443, ACK), public, false);
        check("ACK out", TCP_ESTABLISHED);
        from_remote("data", ACK | PSH);
        check("data in", TCP_ESTABLISHED);
        egress_again(n, "FIN", &seg(H1, 40000, R1, 443, FIN | ACK), public, false);
        check("FIN out", TCP_FIN_OUT);
        // Half-closed: the remote side may go on sending for as long as
        // it likes, with the established lifetime.
        from_remote("data after FIN out", ACK | PSH);
        check("data in after FIN out", TCP_FIN_OUT);
        from_remote("FIN", FIN | ACK);
        check("FIN in", TCP_FIN_BOTH);
        let s = session(n, &sk);
        assert_eq!((s.packets_out, s.packets_in), (3, 4), "packet counts");
        // The 4-tuple reused: a new SYN starts a new handshake.
        egress_again(n, "new SYN", &seg(H1, 40000, R1, 443, SYN), public, false);
        check("new SYN out", TCP_SYN_OUT);
    });
}

/// An RST moves any session to TRANSITORY; any later segment but an RST
/// (or a new handshake's SYN) moves it back to ESTABLISHED, so a spoofed
/// RST cannot cut a connection's lifetime.
#[test]
fn tcp_rst_then_data() {
    use tcp_flags::{ACK, PSH, RST, SYN};
    // RST from outside during the handshake, then the inside goes on.
    per_ingress_hook(napt, |n, hook| {
        let first = syn(H1, 40000, R1, 443);
        let public = egress_first(n, "SYN", &first);
        ingress_to(
            n,
            hook,
            "RST-ACK",
            &seg(R1, 443, POOL, public.port, RST | ACK),
            src_ep(&first),
            false,
        );
        let sk = session_key(TCP, (H1, 40000), (R1, 443));
        assert_eq!(tcp_state_name(session(n, &sk).tcp), "TRANSITORY");
        egress_again(n, "ACK", &seg(H1, 40000, R1, 443, ACK), public, false);
        assert_eq!(tcp_state_name(session(n, &sk).tcp), "ESTABLISHED");
    });
    // RST from inside on an established connection, then data in.
    let n = napt();
    let first = syn(H1, 40001, R1, 443);
    let public = egress_first(&n, "SYN", &first);
    ingress_to(
        &n,
        Hook::IngressXdp,
        "SYN-ACK",
        &seg(R1, 443, POOL, public.port, SYN | ACK),
        src_ep(&first),
        false,
    );
    egress_again(&n, "ACK", &seg(H1, 40001, R1, 443, ACK), public, false);
    egress_again(&n, "RST", &seg(H1, 40001, R1, 443, RST), public, false);
    let sk = session_key(TCP, (H1, 40001), (R1, 443));
    assert_eq!(tcp_state_name(session(&n, &sk).tcp), "TRANSITORY");
    ingress_to(
        &n,
        Hook::IngressXdp,
        "data",
        &seg(R1, 443, POOL, public.port, ACK | PSH),
        src_ep(&first),
        false,
    );
    assert_eq!(tcp_state_name(session(&n, &sk).tcp), "ESTABLISHED");
}

/// Outbound packets refresh every session; inbound ones refresh TCP
/// sessions only.
#[test]
fn refresh_directions() {
    per_ingress_hook(napt, |n, hook| {
        let cases = [
            ("UDP", udp(H1, 5000, R1, 53), udp(R1, 53, POOL, 5000), 53),
            ("ICMP", ping(H1, 6000, R1), pong(R1, 6000, POOL), 0),
            (
                "TCP",
                syn(H1, 7000, R1, 443),
                seg(R1, 443, POOL, 7000, tcp_flags::SYN | tcp_flags::ACK),
                443,
            ),
        ];
        for (what, out, back, rport) in &cases {
            let inside = src_ep(out);
            let public = egress_first(n, what, out);
            let sk = session_key(inside.proto, (inside.addr, inside.port), (R1, *rport));
            let mut s = session(n, &sk);
            s.last_seen = 1;
            n.put_session(sk, s);
            let t0 = dataplane_now_ns();
            ingress_to(n, hook, &format!("{what} inbound"), back, inside, false);
            let t1 = dataplane_now_ns();
            let s = session(n, &sk);
            assert_eq!(s.packets_in, 1, "{what}");
            assert_eq!(s.bytes_in, back.total_len(), "{what}");
            if inside.proto == TCP {
                assert!(
                    clock_window(t0, t1).contains(&s.last_seen),
                    "{what}: inbound TCP did not refresh (last_seen {})",
                    s.last_seen
                );
            } else {
                assert_eq!(
                    s.last_seen, 1,
                    "{what}: inbound refreshed a non-TCP session"
                );
            }
            let t0 = dataplane_now_ns();
            egress_again(n, &format!("{what} outbound"), out, public, false);
            let t1 = dataplane_now_ns();
            let s = session(n, &sk);
            assert!(
                clock_window(t0, t1).contains(&s.last_seen),
                "{what}: outbound did not refresh (last_seen {})",
                s.last_seen
            );
            assert_eq!(s.packets_out, 2, "{what}");
            assert_eq!(s.bytes_out, 2 * out.total_len(), "{what}");
        }
    });
}

// ================================================================ where sessions live

/// A packet of H1:5000 to `dst`:`dport` (UDP, or a TCP ACK segment).
fn flow_out(proto_: u8, dst: Ipv4Addr, dport: u16) -> Packet {
    match proto_ {
        UDP => udp(H1, 5000, dst, dport),
        _ => seg(H1, 5000, dst, dport, tcp_flags::ACK),
    }
}

/// A packet from `src`:`sport` to `public` (UDP, or a TCP ACK segment).
fn flow_in(proto_: u8, src: Ipv4Addr, sport: u16, public: Endpoint) -> Packet {
    match proto_ {
        UDP => udp(src, sport, public.addr, public.port),
        _ => seg(src, sport, public.addr, public.port, tcp_flags::ACK),
    }
}

/// The session that made a mapping is held in it (its first); sessions
/// with other remote endpoints, outbound or admitted inbound, go to
/// SESSIONS. With address-dependent filtering only remote addresses of
/// those further sessions get FILTER entries: the first session's address
/// is admitted by the mapping itself (the same address with another port
/// is another session, so it gets one).
#[test]
fn further_sessions_go_to_the_session_table() {
    for proto_ in [UDP, TCP] {
        per_ingress_hook(napt, |n, hook| {
            let inside = Endpoint::new(H1, 5000, proto_);
            let sk = |r: Ipv4Addr, rp: u16| session_key(proto_, (H1, 5000), (r, rp));
            let filters =
                |n: &Napt| -> Vec<_> { n.filter_all().into_iter().map(|(k, _)| k).collect() };
            let public = egress_first(n, "to R1:53", &flow_out(proto_, R1, 53));
            assert!(n.is_first(&sk(R1, 53)));

            let t0 = dataplane_now_ns();
            egress_again(n, "to R2:53", &flow_out(proto_, R2, 53), public, true);
            let t1 = dataplane_now_ns();
            let s2 = n
                .table_session(&sk(R2, 53))
                .expect("a SESSIONS entry for R2:53");
            assert!(clock_window(t0, t1).contains(&s2.created), "{s2:?}");
            assert_eq!(s2.last_seen, s2.created);
            assert_eq!(
                (s2.public_addr, s2.public_port),
                (be(public.addr), public.port.to_be())
            );
            assert_eq!((s2.packets_out, s2.packets_in), (1, 0));
            let m = n.napt_out(inside).unwrap();
            assert!(
                m.first_is(be(R1), 53u16.to_be()),
                "first session moved: {m:?}"
            );
            assert_eq!(m.first.packets_out, 1, "R2's packet counted on the first");
            assert_eq!(filters(n), vec![filter_key(public, R2)]);

            // The first remote endpoint again: counted on the first
            // session, still no FILTER entry for its address.
            egress_again(
                n,
                "to R1:53 again",
                &flow_out(proto_, R1, 53),
                public,
                false,
            );
            assert_eq!(n.napt_out(inside).unwrap().first.packets_out, 2);
            assert_eq!(n.table_sessions().len(), 1);
            assert_eq!(filters(n), vec![filter_key(public, R2)]);

            // The first session's address with another port: a further
            // session, and now a FILTER entry for that address.
            egress_again(n, "to R1:54", &flow_out(proto_, R1, 54), public, true);
            assert!(n.table_session(&sk(R1, 54)).is_some());
            assert!(n.is_first(&sk(R1, 53)));
            let mut want = vec![filter_key(public, R1), filter_key(public, R2)];
            want.sort_by_key(|k| (k.public_addr, k.remote_addr, k.public_port, k.proto));
            assert_eq!(filters(n), want);

            // Replies reach each its own session.
            ingress_to(
                n,
                hook,
                "from R1:53",
                &flow_in(proto_, R1, 53, public),
                inside,
                false,
            );
            ingress_to(
                n,
                hook,
                "from R2:53",
                &flow_in(proto_, R2, 53, public),
                inside,
                false,
            );
            assert_eq!(n.napt_out(inside).unwrap().first.packets_in, 1);
            assert_eq!(n.table_session(&sk(R2, 53)).unwrap().packets_in, 1);
            assert_eq!(n.table_session(&sk(R1, 54)).unwrap().packets_in, 0);

            // A new remote endpoint admitted inbound (R2's address is in
            // FILTER): a SESSIONS entry with the mapping's public endpoint.
            ingress_to(
                n,
                hook,
                "from R2:99",
                &flow_in(proto_, R2, 99, public),
                inside,
                true,
            );
            let s = n
                .table_session(&sk(R2, 99))
                .expect("a SESSIONS entry for R2:99");
            assert_eq!((s.packets_out, s.packets_in), (0, 1));
            assert_eq!(
                (s.public_addr, s.public_port),
                (be(public.addr), public.port.to_be())
            );
            assert_eq!(n.table_sessions().len(), 3);
            assert_eq!(n.sessions().len(), 4);
            assert_eq!(filters(n).len(), 2, "inbound packets never write FILTER");
            assert_eq!(n.counter(Counter::NaptSessionsCreated), 4);
            assert_eq!(n.counter(Counter::NaptMappingsCreated), 1);
        });
    }
}

/// ICMP queries: the first remote address's session is the mapping's,
/// another remote's goes to SESSIONS (remote port 0).
#[test]
fn icmp_further_remotes_go_to_the_session_table() {
    let n = napt();
    let inside = Endpoint::new(H1, 7000, ICMP);
    let public = egress_first(&n, "ping R1", &ping(H1, 7000, R1));
    egress_again(&n, "ping R1 again", &ping(H1, 7000, R1), public, false);
    egress_again(&n, "ping R2", &ping(H1, 7000, R2), public, true);
    let m = n.napt_out(inside).unwrap();
    assert!(m.first_is(be(R1), 0), "{m:?}");
    assert_eq!(m.first.packets_out, 2);
    let k2 = session_key(ICMP, (H1, 7000), (R2, 0));
    let table: Vec<SessionKey> = n.table_sessions().into_iter().map(|(k, _)| k).collect();
    assert_eq!(table, vec![k2]);
    let filters: Vec<_> = n.filter_all().into_iter().map(|(k, _)| k).collect();
    assert_eq!(filters, vec![filter_key(public, R2)]);
    ingress_to(
        &n,
        Hook::IngressXdp,
        "pong from R2",
        &pong(R2, public.port, POOL),
        inside,
        false,
    );
    ingress_to(
        &n,
        Hook::IngressTc,
        "pong from R1",
        &pong(R1, public.port, POOL),
        inside,
        false,
    );
    assert_eq!(n.table_session(&k2).unwrap().packets_in, 1);
    assert_eq!(n.napt_out(inside).unwrap().first.packets_in, 1);
}

/// Once a mapping's first session has expired (the sweep empties the slot
/// when the mapping stays), the data plane never refills it: the next
/// session, even with the same remote endpoint, goes to SESSIONS, and its
/// remote address to FILTER. Until then the dead first session admits
/// nothing (address-dependent filtering).
#[test]
fn dead_first_slot_is_not_refilled() {
    per_ingress_hook(napt, |n, hook| {
        let inside = Endpoint::new(H1, 5000, UDP);
        let k1 = session_key(UDP, (H1, 5000), (R1, 53));
        let public = egress_first(n, "to R1:53", &udp(H1, 5000, R1, 53));
        n.set_first(inside, FirstSession::default());
        assert!(n.session(&k1).is_none());
        assert!(n.sessions().is_empty());

        for (what, p) in [
            (
                "from R1:53, the dead first's remote",
                udp(R1, 53, POOL, public.port),
            ),
            ("from R1:54", udp(R1, 54, POOL, public.port)),
        ] {
            run_stateless(
                n,
                hook,
                what,
                &p.frame(),
                Want::Drop,
                &only(Counter::DropFiltered),
            );
        }

        let t0 = dataplane_now_ns();
        egress_again(
            n,
            "to R1:53 after the first expired",
            &udp(H1, 5000, R1, 53),
            public,
            true,
        );
        let t1 = dataplane_now_ns();
        let s = n.table_session(&k1).expect("the new session in SESSIONS");
        assert!(clock_window(t0, t1).contains(&s.created), "{s:?}");
        assert_eq!((s.packets_out, s.packets_in), (1, 0));
        let m = n.napt_out(inside).unwrap();
        assert_eq!(m.first, FirstSession::default(), "the slot was refilled");
        assert!(clock_window(t0, t1).contains(&m.last_seen), "{m:?}");
        assert!(
            n.filter(&filter_key(public, R1)).is_some(),
            "no FILTER entry"
        );

        egress_again(n, "to R2:53", &udp(H1, 5000, R2, 53), public, true);
        ingress_to(
            n,
            hook,
            "reply from R1:53",
            &udp(R1, 53, POOL, public.port),
            inside,
            false,
        );
        ingress_to(
            n,
            hook,
            "from R1:54 (FILTER)",
            &udp(R1, 54, POOL, public.port),
            inside,
            true,
        );
        assert_eq!(n.table_session(&k1).unwrap().packets_in, 1);
        assert_eq!(n.table_sessions().len(), 3);
        assert_eq!(n.napt_out(inside).unwrap().first, FirstSession::default());
        assert_eq!(n.counter(Counter::NaptMappingsCreated), 1);
    });

    // Endpoint-independent filtering admits anyone: an inbound session
    // does not refill the slot either.
    per_ingress_hook(
        || napt_with(|c| c.filtering = Filtering::EndpointIndependent.code()),
        |n, hook| {
            let inside = Endpoint::new(H1, 5000, UDP);
            let public = egress_first(n, "to R1:53", &udp(H1, 5000, R1, 53));
            n.set_first(inside, FirstSession::default());
            ingress_to(
                n,
                hook,
                "from R1:53",
                &udp(R1, 53, POOL, public.port),
                inside,
                true,
            );
            let k1 = session_key(UDP, (H1, 5000), (R1, 53));
            assert_eq!(n.table_session(&k1).unwrap().packets_in, 1);
            assert_eq!(n.napt_out(inside).unwrap().first, FirstSession::default());
            assert!(n.filter_all().is_empty());
        },
    );
}

// ================================================================ ICMP errors

/// The datagrams an inside endpoint sends whose errors come back.
fn offending_packets() -> Vec<(&'static str, Packet)> {
    vec![
        (
            "UDP",
            Packet::udp(H1, R1, Udp::new(5000, 33435, &[0x40; 24])).with_ttl(1),
        ),
        (
            "UDP without checksum",
            Packet::udp(
                H1,
                R1,
                Udp::new(5002, 33435, &[0x41; 24]).without_checksum(),
            ),
        ),
        (
            "TCP data",
            Packet::tcp(H1, R1, Tcp::data(5004, 443, &[0xab; 600])),
        ),
        ("TCP SYN", syn(H1, 5006, R1, 443).with_ttl(1)),
        ("ICMP echo", ping(H1, 5008, R1).with_ttl(1)),
        (
            "UDP with IP options",
            Packet::udp(H1, R1, Udp::new(5010, 53, b"opt")).with_ip_options(&OPT_IHL6),
        ),
    ]
}

/// The errors a router or the remote sends back: (what, source, type,
/// code, rest of header).
fn error_kinds() -> Vec<(&'static str, Ipv4Addr, u8, u8, [u8; 4])> {
    vec![
        ("time exceeded", ROUTER, icmp::TIME_EXCEEDED, 0, [0; 4]),
        (
            "port unreachable",
            R1,
            icmp::DEST_UNREACH,
            icmp::PORT_UNREACH,
            [0; 4],
        ),
        (
            "frag needed, MTU 1400",
            ROUTER,
            icmp::DEST_UNREACH,
            icmp::FRAG_NEEDED,
            [0, 0, 0x05, 0x78],
        ),
        (
            "parameter problem",
            ROUTER,
            icmp::PARAM_PROBLEM,
            0,
            [20, 0, 0, 0],
        ),
    ]
}

/// An instance where every offending packet has gone out through a mapping
/// whose public port differs from the inside port; returns it with the
/// (inside view, outside view) of each offending packet.
fn mapped_offenders() -> (Napt, Vec<(&'static str, Packet, Packet)>) {
    let mut n = napt();
    let mut v = Vec::new();
    for (what, p) in offending_packets() {
        let inside = src_ep(&p);
        occupy(&mut n, Endpoint::new(POOL, inside.port, inside.proto));
        let public = egress_first(&n, what, &p);
        assert_ne!(public.port, inside.port);
        v.push((what, p.clone(), with_src(&p, public)));
    }
    (n, v)
}

/// An error from outside quoting a datagram from a pool port of `--ports`
/// that no mapping holds: nobody inside sent it, and the gateway's own
/// datagrams leave from other ports. Dropped, not handed to the stack.
#[test]
fn ingress_icmp_errors_quoting_no_mapping_dropped() {
    let (n, _) = mapped_offenders();
    for (what, about) in [
        ("UDP", udp(POOL, 6001, R1, 53)),
        ("TCP", seg(POOL, 6002, R1, 443, tcp_flags::ACK)),
        ("echo", ping(POOL, 6003, R1)),
    ] {
        let e = Packet::icmp_error(ROUTER, POOL, icmp::TIME_EXCEEDED, 0, [0; 4], &about, None);
        for hook in Hook::INGRESS {
            run_stateless(
                &n,
                hook,
                &format!("time exceeded quoting an unmapped {what} pool port"),
                &e.frame(),
                Want::Drop,
                &only(Counter::DropInboundIcmpErrorNoMapping),
            );
        }
    }
}

/// RFC 5508 REQ-3: an error from outside about a mapping, with a bad ICMP
/// checksum or a bad checksum in the quoted IPv4 header, is dropped rather
/// than translated; so is one too long to verify. The same for a static
/// host's.
#[test]
fn ingress_icmp_errors_with_bad_checksums_dropped() {
    let (mut n, offenders) = mapped_offenders();
    n.add_static(H3, STATIC_PUB);
    let (_, _, outside_view) = &offenders[0];
    let to_static = udp(STATIC_PUB, 7000, R1, 53);
    for (what, dst, quoted) in [
        ("a mapping", POOL, outside_view.clone()),
        ("a static host", STATIC_PUB, to_static),
    ] {
        let good = Packet::icmp_error(ROUTER, dst, icmp::TIME_EXCEEDED, 0, [0; 4], &quoted, None);
        let frame = good.frame();
        let icmp_at = ETH_HLEN + 20;
        let mut bad_icmp = frame.clone();
        bad_icmp[icmp_at + 2] ^= 0x01;
        let mut bad_inner = frame.clone();
        // The quoted header's checksum, fixed up in the ICMP checksum so
        // only the inner one is wrong.
        bad_inner[icmp_at + 8 + 10] ^= 0x01;
        bad_inner[icmp_at + 2] ^= 0x01;
        let mut long = quoted.clone();
        long.l4 = L4::Udp(Udp::new(
            u16::from_be_bytes([frame[icmp_at + 28], frame[icmp_at + 29]]),
            53,
            &[7; 1100],
        ));
        let too_long = Packet::icmp_error(ROUTER, dst, icmp::TIME_EXCEEDED, 0, [0; 4], &long, None);
        for hook in Hook::INGRESS {
            for (kind, f) in [
                ("bad ICMP checksum", &bad_icmp),
                ("bad quoted IPv4 checksum", &bad_inner),
                ("longer than verified", &too_long.frame()),
            ] {
                run(
                    &n,
                    hook,
                    &format!("error about {what}: {kind}"),
                    f,
                    Want::Drop,
                    &only(Counter::DropIcmpErrorBadChecksum),
                );
            }
        }
    }
}

/// ICMP errors from outside about translated datagrams: outer destination,
/// inner source address and port (or identifier), inner IP checksum, inner
/// L4 checksum when quoted, ICMP checksum. They never create or refresh
/// state.
#[test]
fn ingress_icmp_errors_translated() {
    let (n, offenders) = mapped_offenders();
    for (what, inside_view, outside_view) in &offenders {
        for (kind, from, typ, code, rest) in error_kinds() {
            for quote in [Some(28), Some(32), None] {
                let quote = if matches!(inside_view.l4, L4::Tcp(_)) && quote == Some(32) {
                    Some(40) // up to the TCP checksum
                } else {
                    quote
                };
                let input = Packet::icmp_error(from, POOL, typ, code, rest, outside_view, quote);
                let expected = Packet::icmp_error(from, H1, typ, code, rest, inside_view, quote);
                let label = format!("{kind} quoting {what} ({quote:?} bytes)");
                for hook in Hook::INGRESS {
                    run_stateless(
                        &n,
                        hook,
                        &label,
                        &input.frame(),
                        Want::Pass(&expected.frame()),
                        &icmp_error_in(input.total_len()),
                    );
                }
            }
        }
    }
}

/// ICMP errors that quote nothing of ours, or too little, pass untouched.
#[test]
fn ingress_icmp_errors_not_ours_pass_untouched() {
    let (n, offenders) = mapped_offenders();
    let (_, _, outside_view) = &offenders[0];
    let gateways_own = udp(POOL, 600, R1, 53);
    let someone_else = udp(R2, 5000, R1, 53);
    let cases = [
        (
            "quoting a pool port outside --ports (the gateway's own)",
            Packet::icmp_error(
                ROUTER,
                POOL,
                icmp::TIME_EXCEEDED,
                0,
                [0; 4],
                &gateways_own,
                None,
            ),
        ),
        (
            "quoting somebody else's datagram",
            Packet::icmp_error(
                ROUTER,
                POOL,
                icmp::TIME_EXCEEDED,
                0,
                [0; 4],
                &someone_else,
                None,
            ),
        ),
    ];
    for hook in Hook::INGRESS {
        for (what, p) in &cases {
            run_stateless(
                &n,
                hook,
                what,
                &p.frame(),
                Want::Untouched,
                &only(Counter::PassedNotOurs),
            );
        }
        // Quotes cut inside the inner IP header or before the inner port:
        // passed untouched (which "not translated" counter moves is not
        // pinned down here).
        for (what, len) in [("inner IP header cut", 12), ("inner ports cut", 21)] {
            let p = Packet::icmp_error(
                ROUTER,
                POOL,
                icmp::TIME_EXCEEDED,
                0,
                [0; 4],
                outside_view,
                Some(len),
            );
            let before = n.counters();
            let st = n.state();
            let out = n.run(hook, &p.frame());
            assert_eq!(out.verdict, hook.pass(), "{what} via {hook:?}");
            assert_frame_eq(&format!("{what} via {hook:?}"), &out.data, &p.frame());
            assert_untranslated_counted(&format!("{what} via {hook:?}"), &before, &n.counters());
            assert_eq!(n.state(), st, "{what}");
        }
    }
}

/// Exactly one "not translated" counter (passed_not_ours or
/// ingress_passed_malformed) moved, by one; nothing else.
#[track_caller]
fn assert_untranslated_counted(what: &str, before: &[u64], after: &[u64]) {
    let d = |c: Counter| after[c as usize] - before[c as usize];
    let (a, b) = (
        d(Counter::PassedNotOurs),
        d(Counter::IngressPassedMalformed),
    );
    assert_eq!(
        a + b,
        1,
        "{what}: passed_not_ours +{a}, ingress_passed_malformed +{b}"
    );
    let mut want = vec![
        (Counter::PassedNotOurs, a),
        (Counter::IngressPassedMalformed, b),
    ];
    want.retain(|(_, v)| *v != 0);
    assert_deltas(what, before, after, &want);
}

/// ICMP errors an inside host sends about a datagram it received through a
/// port forward or a dynamic mapping: outer source and inner destination
/// address + port become the public ones; state unchanged.
#[test]
fn egress_icmp_errors_translated() {
    let mut n = napt_with(|c| c.filtering = Filtering::AddressAndPort.code());
    // UDP forward 198.51.100.1:8053 -> H2:53 and TCP forward :8080 -> H2:80.
    n.add_forward(Endpoint::new(POOL, 8053, UDP), Endpoint::new(H2, 53, UDP));
    n.add_forward(Endpoint::new(POOL, 8080, TCP), Endpoint::new(H2, 80, TCP));
    // A dynamic mapping H1:5000 -> POOL:P (P != 5000).
    occupy(&mut n, Endpoint::new(POOL, 5000, UDP));
    let out = udp(H1, 5000, R1, 53);
    let public = egress_first(&n, "dynamic mapping", &out);

    let received = [
        (
            "via the UDP forward",
            udp(R1, 5353, POOL, 8053),
            Endpoint::new(H2, 53, UDP),
            true,
        ),
        (
            "via the TCP forward",
            Packet::tcp(R1, POOL, Tcp::data(40000, 8080, &[1; 300])),
            Endpoint::new(H2, 80, TCP),
            true,
        ),
        (
            "via the dynamic mapping",
            udp(R1, 53, public.addr, public.port),
            src_ep(&out),
            false,
        ),
    ];
    for (what, outside_view, inside, new_session) in received {
        ingress_to(
            &n,
            Hook::IngressXdp,
            &format!("datagram {what}"),
            &outside_view,
            inside,
            new_session,
        );
        let inside_view = with_dst(&outside_view, inside);
        for (kind, typ, code, rest) in [
            (
                "port unreachable",
                icmp::DEST_UNREACH,
                icmp::PORT_UNREACH,
                [0; 4],
            ),
            (
                "frag needed",
                icmp::DEST_UNREACH,
                icmp::FRAG_NEEDED,
                [0, 0, 0x02, 0x40],
            ),
            ("time exceeded", icmp::TIME_EXCEEDED, 0, [0; 4]),
        ] {
            for quote in [Some(28), None] {
                let input =
                    Packet::icmp_error(inside.addr, R1, typ, code, rest, &inside_view, quote);
                let expected = Packet::icmp_error(POOL, R1, typ, code, rest, &outside_view, quote);
                let label = format!(
                    "{kind} from {} about a datagram {what} ({quote:?} bytes)",
                    inside.addr
                );
                run_stateless(
                    &n,
                    Hook::EgressTc,
                    &label,
                    &input.frame(),
                    Want::Pass(&expected.frame()),
                    &icmp_error_out(input.total_len()),
                );
            }
        }
    }
}

/// An inside host's ICMP error about a flow without a mapping would leak
/// its address: dropped.
#[test]
fn egress_icmp_error_without_mapping_dropped() {
    let n = napt();
    egress_first(&n, "unrelated mapping", &udp(H1, 5000, R1, 53));
    for (what, about) in [
        ("UDP to an unmapped port", udp(R2, 53, H1, 6000)),
        (
            "TCP to an unmapped port",
            seg(R2, 443, H1, 6001, tcp_flags::ACK),
        ),
        (
            "TCP to the port mapped for UDP",
            seg(R1, 53, H1, 5000, tcp_flags::ACK),
        ),
    ] {
        let e = Packet::icmp_error(
            H1,
            R2,
            icmp::DEST_UNREACH,
            icmp::PORT_UNREACH,
            [0; 4],
            &about,
            None,
        );
        run_stateless(
            &n,
            Hook::EgressTc,
            what,
            &e.frame(),
            Want::Drop,
            &only(Counter::DropIcmpErrorNoMapping),
        );
    }
}

// ================================================================ port forwards

/// A port forward admits any remote even with address-and-port filtering;
/// replies leave from the forwarded port; the handshake reaches
/// Established.
#[test]
fn port_forward_admits_anyone() {
    use tcp_flags::{ACK, SYN};
    let setup = || {
        let mut n = napt_with(|c| c.filtering = Filtering::AddressAndPort.code());
        n.add_forward(Endpoint::new(POOL, 8080, TCP), Endpoint::new(H2, 80, TCP));
        n
    };
    per_ingress_hook(setup, |n, hook| {
        let inside = Endpoint::new(H2, 80, TCP);
        let public = Endpoint::new(POOL, 8080, TCP);
        for (i, remote) in [(R1, 50000), (R2, 50001)].into_iter().enumerate() {
            let what = format!("SYN from {}:{}", remote.0, remote.1);
            ingress_to(
                n,
                hook,
                &what,
                &syn(remote.0, remote.1, POOL, 8080),
                inside,
                true,
            );
            let sk = session_key(TCP, (H2, 80), remote);
            assert_eq!(session(n, &sk).tcp, TCP_SYN_IN, "{what}");
            assert_eq!(session(n, &sk).flags, SESSION_INBOUND, "{what}");
            egress_again(
                n,
                "SYN-ACK",
                &seg(H2, 80, remote.0, remote.1, SYN | ACK),
                public,
                false,
            );
            // The inside's SYN-ACK is not enough for an inbound-opened
            // connection (spoofed SYNs get answered too).
            assert_eq!(session(n, &sk).tcp, TCP_SYN_RECV);
            ingress_to(
                n,
                hook,
                "ACK",
                &seg(remote.0, remote.1, POOL, 8080, ACK),
                inside,
                false,
            );
            let s = session(n, &sk);
            assert_eq!(s.tcp, TCP_ESTABLISHED);
            assert_eq!((s.public_addr, s.public_port), (be(POOL), 8080u16.to_be()));
            assert_eq!(n.sessions().len(), i + 1);
            // A forward has no first session: all of its are in SESSIONS.
            assert_eq!(n.table_sessions().len(), i + 1);
        }
        let (out, _) = assert_mapping(n, inside, public, MAPPING_FORWARD);
        assert_eq!(out.first, FirstSession::default(), "forward's first slot");
        assert_eq!(n.counter(Counter::NaptMappingsCreated), 0);
        assert!(n.filter_all().is_empty());
    });
}

/// The allocator never hands out a forwarded public port, and the forwarded
/// host's own outbound connections leave from its forwarded port (EIM).
#[test]
fn forwards_and_dynamic_mappings_share_the_pool() {
    let mut n = napt();
    n.add_forward(Endpoint::new(POOL, 8080, TCP), Endpoint::new(H2, 80, TCP));
    let public = egress_first(&n, "H1 from port 8080", &syn(H1, 8080, R1, 443));
    assert_ne!(
        public.port, 8080,
        "a dynamic mapping took the forwarded port"
    );
    assert_eq!(public.port % 2, 0);
    assert_mapping(
        &n,
        Endpoint::new(H2, 80, TCP),
        Endpoint::new(POOL, 8080, TCP),
        MAPPING_FORWARD,
    );
    egress_again(
        &n,
        "the forwarded host connects out",
        &syn(H2, 80, R1, 443),
        Endpoint::new(POOL, 8080, TCP),
        true,
    );
    assert_eq!(n.counter(Counter::NaptMappingsCreated), 1);
    // The forward's session went to SESSIONS: its first slot stays empty.
    let sk = session_key(TCP, (H2, 80), (R1, 443));
    assert!(n.table_session(&sk).is_some() && !n.is_first(&sk));
    let fwd = n.napt_out(Endpoint::new(H2, 80, TCP)).unwrap();
    assert_eq!(fwd.first, FirstSession::default());
}

// ================================================================ static precedence

/// A static 1:1 entry wins over NAPT for an inside host: address-only
/// translation, no NAPT state, even when its port is taken in the pool.
#[test]
fn static_entries_take_precedence() {
    let setup = || {
        let mut n = napt();
        n.add_static(H3, STATIC_PUB);
        occupy(&mut n, Endpoint::new(POOL, 5000, UDP));
        n
    };
    per_ingress_hook(setup, |n, hook| {
        let out = udp(H3, 5000, R1, 53);
        run(
            n,
            Hook::EgressTc,
            "static host, UDP",
            &out.frame(),
            Want::Pass(&out.clone().with_src(STATIC_PUB).frame()),
            &egress_known(out.total_len()),
        );
        let out = syn(H3, 40000, R1, 443);
        run(
            n,
            Hook::EgressTc,
            "static host, TCP",
            &out.frame(),
            Want::Pass(&out.clone().with_src(STATIC_PUB).frame()),
            &egress_known(out.total_len()),
        );
        let back = udp(R1, 53, STATIC_PUB, 5000);
        run(
            n,
            hook,
            "to the static address",
            &back.frame(),
            Want::Pass(&back.clone().with_dst(H3).frame()),
            &ingress_known(back.total_len()),
        );
        let st = n.state();
        assert_eq!(st.out.len(), 0, "NAPT_OUT: {:?}", st.out);
        assert!(st.session_table.is_empty() && st.filter.is_empty());
        // A NAPT host next to it is still translated by NAPT.
        egress_first(n, "NAPT host", &udp(H1, 5000, R1, 53));
    });
}

// ================================================================ malformed, unsupported, not ours

/// Internal-source packets cut inside their transport header are dropped,
/// never translated.
#[test]
fn egress_truncated_is_dropped() {
    let n = napt();
    let l4 = ETH_HLEN + 20;
    let mut short_tot = syn(H1, 40000, R1, 443).frame();
    // IPv4 total length 30 (< 20 + 20) with the bytes still there.
    short_tot[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&30u16.to_be_bytes());
    short_tot[ETH_HLEN + 10..ETH_HLEN + 12].fill(0);
    let c = checksum(&short_tot[ETH_HLEN..ETH_HLEN + 20]);
    short_tot[ETH_HLEN + 10..ETH_HLEN + 12].copy_from_slice(&c.to_be_bytes());
    let cases = [
        (
            "TCP cut at 10 bytes",
            cut(&syn(H1, 40000, R1, 443).frame(), l4 + 10),
        ),
        (
            "TCP cut at 19 bytes",
            cut(&seg(H1, 40000, R1, 443, tcp_flags::ACK).frame(), l4 + 19),
        ),
        (
            "UDP cut at 4 bytes",
            cut(&udp(H1, 5000, R1, 53).frame(), l4 + 4),
        ),
        (
            "UDP cut at 7 bytes",
            cut(&udp(H1, 5000, R1, 53).frame(), l4 + 7),
        ),
        ("ICMP cut at 4 bytes", cut(&ping(H1, 7, R1).frame(), l4 + 4)),
        ("TCP with IPv4 total length 30", short_tot),
        (
            "ICMP error cut inside the inner IP header",
            Packet::icmp_error(
                H1,
                R1,
                icmp::DEST_UNREACH,
                icmp::PORT_UNREACH,
                [0; 4],
                &udp(R1, 53, H1, 5000),
                Some(12),
            )
            .frame(),
        ),
    ];
    for (what, frame) in &cases {
        run(
            &n,
            Hook::EgressTc,
            what,
            frame,
            Want::Drop,
            &only(Counter::EgressDroppedMalformed),
        );
        assert_eq!(n.state().out.len(), 0, "{what}: created a mapping");
    }
}

/// What NAPT cannot translate from inside (no ports) is dropped: other
/// protocols, ICMP queries other than echo.
#[test]
fn egress_unsupported_is_dropped() {
    let n = napt();
    let gre = [0x00, 0x00, 0x08, 0x00, 0x45, 0x00, 0x00, 0x14];
    let mut timestamp = Icmp::echo_request(0x55, 1, &[0; 12]);
    timestamp.typ = 13;
    let cases = [
        ("GRE", Packet::raw(H1, R1, proto::GRE, &gre)),
        ("ICMP timestamp request", Packet::icmp(H1, R1, timestamp)),
    ];
    for (what, p) in &cases {
        run(
            &n,
            Hook::EgressTc,
            what,
            &p.frame(),
            Want::Drop,
            &only(Counter::DropUnsupported),
        );
        assert!(n.state().out.is_empty(), "{what}: created a mapping");
    }
}

/// A fragmented datagram: 200 bytes of UDP payload in fragments of 64, 64
/// and the rest, with IP identification `id`.
fn fragmented(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, id: u16) -> Packet {
    Packet::udp(src, dst, Udp::new(sport, dport, &[0x5a; 200])).with_id(id)
}

/// The (offset, length, more fragments) of the fragments of
/// [`fragmented`].
const FRAGMENTS: [(usize, usize, bool); 3] = [(0, 64, true), (64, 64, true), (128, 1000, false)];

/// The first fragment carries the ports and is translated like the whole
/// datagram (its L4 checksum covers the whole datagram); the later ones
/// take its translation (address and IPv4 checksum only), outbound and
/// inbound, with a public port that differs from the inside port.
#[test]
fn later_fragments_follow_their_first_fragment() {
    let setup = || napt_occupying(Endpoint::new(POOL, 5000, UDP));
    per_ingress_hook(setup, |n, hook| {
        let inside = Endpoint::new(H1, 5000, UDP);
        let out = fragmented(H1, 5000, R1, 53, 0x4242);
        let (o, l, m) = FRAGMENTS[0];
        let first = out.fragment(o, l, m);
        let got = run(
            n,
            Hook::EgressTc,
            "first fragment out",
            &first.frame(),
            Want::Translated,
            &egress_new(first.total_len()),
        );
        let public = public_of(n, inside);
        assert_ne!(public.port, 5000);
        let expected = with_src(&out, public);
        assert_frame_eq(
            "first fragment out",
            &got,
            &expected.fragment(o, l, m).frame(),
        );
        for &(o, l, m) in &FRAGMENTS[1..] {
            let f = out.fragment(o, l, m);
            run(
                n,
                Hook::EgressTc,
                &format!("fragment at {o} out"),
                &f.frame(),
                Want::Pass(&expected.fragment(o, l, m).frame()),
                &[
                    (Counter::EgressTranslated, 1),
                    (Counter::EgressBytes, f.total_len()),
                    (Counter::FragmentsTranslated, 1),
                ],
            );
        }

        let back = fragmented(R1, 53, POOL, public.port, 0x5151);
        let expected = with_dst(&back, inside);
        for (i, &(o, l, m)) in FRAGMENTS.iter().enumerate() {
            let f = back.fragment(o, l, m);
            let mut deltas = ingress_known(f.total_len());
            if i > 0 {
                deltas.push((Counter::FragmentsTranslated, 1));
            }
            run(
                n,
                hook,
                &format!("fragment at {o} in"),
                &f.frame(),
                Want::Pass(&expected.fragment(o, l, m).frame()),
                &deltas,
            );
        }
        let s = session(n, &session_key(UDP, (H1, 5000), (R1, 53)));
        assert_eq!(
            (s.packets_out, s.packets_in),
            (1, 1),
            "only first fragments touch sessions"
        );
    });
}

/// An inside host's later fragment whose first fragment was not seen never
/// leaves with the inside address: dropped (or held until the first
/// fragment comes), with exactly one reason counted.
#[test]
fn egress_later_fragment_without_first_is_not_sent() {
    let n = napt();
    let out = fragmented(H1, 5000, R1, 53, 0x4343);
    // Another datagram of the same flow has been seen.
    let other = fragmented(H1, 5000, R1, 53, 0x4344).fragment(0, 64, true);
    run(
        &n,
        Hook::EgressTc,
        "first fragment of another datagram",
        &other.frame(),
        Want::Translated,
        &egress_new(other.total_len()),
    );
    for &(o, l, m) in &FRAGMENTS[1..] {
        let f = out.fragment(o, l, m);
        let what = format!("fragment at {o} without its first");
        let before = n.counters();
        let st = n.state();
        let res = n.run(Hook::EgressTc, &f.frame());
        let after = n.counters();
        assert_eq!(
            res.verdict,
            Hook::EgressTc.drop(),
            "{what}: {}",
            Hook::EgressTc.verdict_name(res.verdict)
        );
        let moved: Vec<_> = Counter::ALL
            .iter()
            .filter(|c| after[**c as usize] != before[**c as usize])
            .map(|c| (c.name(), after[*c as usize] - before[*c as usize]))
            .collect();
        assert_eq!(moved.len(), 1, "{what}: counters moved: {moved:?}");
        assert_eq!(moved[0].1, 1, "{what}: counters moved: {moved:?}");
        for c in [
            Counter::EgressTranslated,
            Counter::FragmentsTranslated,
            Counter::PassedNotOurs,
        ] {
            assert_ne!(moved[0].0, c.name(), "{what}: {moved:?}");
        }
        assert_eq!(n.state(), st, "{what}: NAPT state changed");
    }
}

/// A later fragment to a pool address whose first fragment was not seen
/// goes to the stack untouched, counted once, as `ingress_passed_fragment`.
#[test]
fn ingress_later_fragment_without_first_is_held_or_passed() {
    let n = napt_with(|c| c.filtering = Filtering::EndpointIndependent.code());
    egress_first(&n, "UDP", &udp(H1, 5000, R1, 53));
    let back = fragmented(R1, 53, POOL, 5000, 0x6161);
    for hook in Hook::INGRESS {
        for &(o, l, m) in &FRAGMENTS[1..] {
            let f = back.fragment(o, l, m);
            // XDP cannot hold a fragment: it goes to the stack untouched.
            // TC holds it until its first fragment comes (RFC 4787 REQ-14).
            let (want, counter) = match hook {
                Hook::IngressXdp => (Want::Untouched, Counter::IngressPassedFragment),
                _ => (Want::Drop, Counter::FragmentsHeld),
            };
            run_stateless(
                &n,
                hook,
                &format!("fragment at {o} to the pool without its first"),
                &f.frame(),
                want,
                &only(counter),
            );
        }
    }
}

/// Inbound packets to a mapping that are cut short pass untouched and
/// change nothing. To a pool address they count as malformed (as a cut
/// packet to a static address does); to any other address they are not
/// ours.
#[test]
fn ingress_truncated_passes_untouched() {
    let n = napt_with(|c| c.filtering = Filtering::EndpointIndependent.code());
    egress_first(&n, "UDP", &udp(H1, 5000, R1, 53));
    egress_first(&n, "TCP", &syn(H1, 40000, R1, 443));
    egress_first(&n, "ICMP", &ping(H1, 7000, R1));
    let l4 = ETH_HLEN + 20;
    let malformed = Counter::IngressPassedMalformed;
    let cases = [
        (
            "UDP cut at 4 bytes",
            cut(&udp(R1, 53, POOL, 5000).frame(), l4 + 4),
            malformed,
        ),
        (
            "TCP cut at 12 bytes",
            cut(&seg(R1, 443, POOL, 40000, tcp_flags::ACK).frame(), l4 + 12),
            malformed,
        ),
        (
            "echo reply cut at 6 bytes",
            cut(&pong(R1, 7000, POOL).frame(), l4 + 6),
            malformed,
        ),
        (
            "UDP to another address cut at 4 bytes",
            cut(&udp(R1, 53, OUTSIDER, 5000).frame(), l4 + 4),
            Counter::PassedNotOurs,
        ),
    ];
    for hook in Hook::INGRESS {
        for (what, frame, counter) in &cases {
            let before = n.counters();
            let st = n.state();
            let out = n.run(hook, frame);
            let label = format!("{what} via {hook:?}");
            assert_eq!(
                out.verdict,
                hook.pass(),
                "{label}: {}",
                hook.verdict_name(out.verdict)
            );
            assert_frame_eq(&label, &out.data, frame);
            assert_deltas(&label, &before, &n.counters(), &[(*counter, 1)]);
            assert_eq!(n.state(), st, "{label}: state changed");
        }
    }
}

/// Sources that are not inside are not NAPT's: untouched.
#[test]
fn non_internal_sources_untouched() {
    let n = napt();
    const OUT: &[Hook] = &[Hook::EgressTc];
    const BOTH_WAYS: &[Hook] = &[Hook::EgressTc, Hook::IngressXdp, Hook::IngressTc];
    // (what, frame, the programs it goes through)
    let cases = [
        ("outsider UDP", udp(OUTSIDER, 5000, R1, 53).frame(), OUT),
        ("outsider TCP", syn(OUTSIDER, 40000, R1, 443).frame(), OUT),
        (
            "the gateway's own pool address",
            udp(POOL, 5000, R1, 53).frame(),
            OUT,
        ),
        (
            "outsider GRE",
            Packet::raw(OUTSIDER, R1, proto::GRE, &[0, 0, 8, 0]).frame(),
            OUT,
        ),
        (
            "outsider later fragment",
            Packet::udp(OUTSIDER, R1, Udp::new(1, 2, &[0; 100]))
                .fragment(64, 100, false)
                .frame(),
            OUT,
        ),
        ("ARP", arp_request(H1, POOL), BOTH_WAYS),
        ("IPv6", ipv6_udp(b"v6"), BOTH_WAYS),
    ];
    for (what, frame, hooks) in &cases {
        for &hook in *hooks {
            run(
                &n,
                hook,
                what,
                frame,
                Want::Untouched,
                &only(Counter::PassedNotOurs),
            );
        }
    }
    assert_eq!(n.state().out.len(), 0);
}

/// With an empty pool NAPT is off: inside sources pass untouched.
#[test]
fn napt_off_with_empty_pool() {
    let mut n = napt();
    n.set_pool(&[]);
    assert_eq!(n.config().pool_len, 0);
    for (what, p) in [
        ("UDP", udp(H1, 5000, R1, 53)),
        ("GRE", Packet::raw(H1, R1, proto::GRE, &[0, 0, 8, 0])),
    ] {
        run(
            &n,
            Hook::EgressTc,
            what,
            &p.frame(),
            Want::Untouched,
            &only(Counter::PassedNotOurs),
        );
    }
    assert!(n.state().out.is_empty());
}

/// Sanity of the harness itself: every counter fits the counter arrays.
#[test]
fn counter_count_matches() {
    assert!(Counter::ALL.iter().all(|c| (*c as u32) < COUNTER_COUNT));
}

// ================================================================ correct at the edges

/// The gateway's own ICMP errors about inbound packets it translated (TTL
/// exceeded on the way in, fragmentation needed towards a smaller inside
/// MTU, host unreachable for a silent forward target) quote the inside
/// endpoint: leaving the external interface, the quote names the public
/// endpoint again, with every checksum right; the outer header (the
/// gateway's own address) stays.
#[test]
fn gateway_icmp_errors_quote_the_public_endpoint() {
    let mut n = napt();
    n.add_forward(Endpoint::new(POOL, 8080, TCP), Endpoint::new(H2, 80, TCP));
    n.add_static(H3, STATIC_PUB);
    let out = udp(H1, 5000, R1, 53);
    let public = egress_first(&n, "the inside host's datagram", &out);
    let received = [
        (
            "to a dynamic mapping",
            udp(R1, 53, public.addr, public.port),
            src_ep(&out),
        ),
        (
            "to a port forward",
            Packet::tcp(R1, POOL, Tcp::data(40000, 8080, &[1; 300])),
            Endpoint::new(H2, 80, TCP),
        ),
        (
            "to a static host",
            udp(R1, 53, STATIC_PUB, 7000),
            Endpoint::new(H3, 7000, UDP),
        ),
    ];
    for gateway in [POOL, ROUTER] {
        for (what, outside_view, inside) in &received {
            let inside_view = with_dst(outside_view, *inside);
            for (kind, typ, code, rest) in [
                ("time exceeded", icmp::TIME_EXCEEDED, 0, [0; 4]),
                (
                    "frag needed",
                    icmp::DEST_UNREACH,
                    icmp::FRAG_NEEDED,
                    [0, 0, 0x05, 0x14],
                ),
                ("host unreachable", icmp::DEST_UNREACH, 1, [0; 4]),
            ] {
                for quote in [Some(28), None] {
                    let input =
                        Packet::icmp_error(gateway, R1, typ, code, rest, &inside_view, quote);
                    let expected =
                        Packet::icmp_error(gateway, R1, typ, code, rest, outside_view, quote);
                    let label =
                        format!("{kind} from {gateway} about a datagram {what} ({quote:?})");
                    run_stateless(
                        &n,
                        Hook::EgressTc,
                        &label,
                        &input.frame(),
                        Want::Pass(&expected.frame()),
                        &only(Counter::IcmpErrorsLocalTranslated),
                    );
                }
            }
        }
    }
}

/// A gateway's error quoting an inside endpoint that no binding names
/// must not leave with the inside address: dropped. One quoting nobody
/// of ours is the gateway's own business: passed untouched.
#[test]
fn gateway_icmp_errors_without_binding() {
    let n = napt();
    egress_first(&n, "unrelated mapping", &udp(H1, 5000, R1, 53));
    // (what, the quoted datagram, what becomes of the error, its counter)
    let cases = [
        (
            "time exceeded quoting an unmapped inside endpoint",
            udp(R2, 53, H1, 6000),
            Want::Drop,
            Counter::DropIcmpErrorNoMapping,
        ),
        (
            "time exceeded quoting an outside address",
            udp(R2, 53, OUTSIDER, 6000),
            Want::Untouched,
            Counter::PassedNotOurs,
        ),
    ];
    for (what, quoted, want, counter) in cases {
        let e = Packet::icmp_error(POOL, R2, icmp::TIME_EXCEEDED, 0, [0; 4], &quoted, None);
        run(&n, Hook::EgressTc, what, &e.frame(), want, &only(counter));
    }
}

/// RFC 5382 REQ-4: a SYN to a pool port of the NAPT range that no mapping
/// admits gets no answer (dropped, not handed to the stack, which would
/// send an RST); one outside the range is the gateway's own. Segments
/// other than SYNs still go to the stack.
#[test]
fn unsolicited_syn_dropped_silently() {
    use tcp_flags::{ACK, SYN};
    let setup = || napt_with(|c| (c.port_min, c.port_max) = (20000, 30000));
    per_ingress_hook(setup, |n, hook| {
        run(
            n,
            hook,
            "SYN to a pool port in range",
            &syn(R1, 40000, POOL, 25000).frame(),
            Want::Drop,
            &only(Counter::DropUnsolicitedSyn),
        );
        for (what, p) in [
            ("SYN below the range", syn(R1, 40000, POOL, 22)),
            ("SYN above the range", syn(R1, 40000, POOL, 30001)),
            ("SYN-ACK in range", seg(R1, 40000, POOL, 25000, SYN | ACK)),
            ("ACK in range", seg(R1, 40000, POOL, 25000, ACK)),
        ] {
            run(
                n,
                hook,
                what,
                &p.frame(),
                Want::Untouched,
                &only(Counter::PassedNotOurs),
            );
        }
    });
}

/// Deterministic allocation: a TCP segment to a port of a host's range
/// that no mapping holds belongs to a flow whose gateway failed over — it
/// is dropped (no reset from the stack), whatever its flags; ports past
/// the last range and other protocols stay the gateway's own.
#[test]
fn deterministic_unmapped_tcp_dropped_silently() {
    use nat_common::deterministic::ALLOCATION_DETERMINISTIC;
    use tcp_flags::{ACK, FIN, RST, SYN};
    let setup = || {
        napt_with(|c| {
            (c.port_min, c.port_max) = (20000, 30000);
            c.allocation = ALLOCATION_DETERMINISTIC;
            // 4 hosts per pool address, 1000 ports each: 20000-23999.
            (c.det_hosts_per_addr, c.det_ports_per_host) = (4, 1000);
        })
    };
    per_ingress_hook(setup, |n, hook| {
        for (what, p, counter) in [
            (
                "SYN to a host's port",
                syn(R1, 40000, POOL, 21000),
                Counter::DropUnsolicitedSyn,
            ),
            (
                "ACK to a host's port",
                seg(R1, 40000, POOL, 21000, ACK),
                Counter::DropTcpNoMapping,
            ),
            (
                "SYN-ACK to a host's port",
                seg(R1, 40000, POOL, 20000, SYN | ACK),
                Counter::DropTcpNoMapping,
            ),
            (
                "FIN to the last host's last port",
                seg(R1, 40000, POOL, 23999, FIN | ACK),
                Counter::DropTcpNoMapping,
            ),
            (
                "RST to a host's port",
                seg(R1, 40000, POOL, 22000, RST),
                Counter::DropTcpNoMapping,
            ),
        ] {
            run(n, hook, what, &p.frame(), Want::Drop, &only(counter));
        }
        for (what, p) in [
            ("ACK past the last range", seg(R1, 40000, POOL, 24000, ACK)),
            ("ACK below the port range", seg(R1, 40000, POOL, 443, ACK)),
        ] {
            run(
                n,
                hook,
                what,
                &p.frame(),
                Want::Untouched,
                &only(Counter::PassedNotOurs),
            );
        }
        run(
            n,
            hook,
            "UDP to a host's port",
            &udp(R1, 40000, POOL, 21000).frame(),
            Want::Untouched,
            &only(Counter::PassedNotOurs),
        );
    });
}

/// Simultaneous open (RFC 5382 REQ-4's reason): the remote's SYN comes
/// first and is dropped; the inside's SYN makes the mapping; the remote's
/// retransmitted SYN is admitted, even with address-and-port filtering,
/// and the session is established.
#[test]
fn simultaneous_open_after_an_early_syn() {
    use tcp_flags::{ACK, SYN};
    let n = napt_with(|c| c.filtering = Filtering::AddressAndPort.code());
    run(
        &n,
        Hook::IngressXdp,
        "the remote's early SYN",
        &syn(R1, 6000, POOL, 40000).frame(),
        Want::Drop,
        &only(Counter::DropUnsolicitedSyn),
    );
    let out = syn(H1, 40000, R1, 6000);
    let public = egress_first(&n, "the inside's SYN", &out);
    assert_eq!(public.port, 40000, "port preserved");
    ingress_to(
        &n,
        Hook::IngressXdp,
        "the remote's SYN again",
        &syn(R1, 6000, POOL, 40000),
        src_ep(&out),
        false,
    );
    let sk = session_key(TCP, (H1, 40000), (R1, 6000));
    assert_eq!(tcp_state_name(session(&n, &sk).tcp), "ESTABLISHED");
    egress_again(
        &n,
        "SYN-ACK",
        &seg(H1, 40000, R1, 6000, SYN | ACK),
        public,
        false,
    );
    assert_eq!(tcp_state_name(session(&n, &sk).tcp), "ESTABLISHED");
}

/// `--max-inbound-sessions`: inbound packets create sessions only up to
/// the cap (counted), while the inside's own sessions are not capped; the
/// data plane counts what it created in `INBOUND_SESSIONS`.
#[test]
fn inbound_sessions_capped() {
    let setup = || {
        let mut n = napt_with(|c| c.max_inbound_sessions = 2);
        n.add_forward(Endpoint::new(POOL, 8080, TCP), Endpoint::new(H2, 80, TCP));
        n
    };
    per_ingress_hook(setup, |n, hook| {
        let inside = Endpoint::new(H2, 80, TCP);
        for (i, remote) in [(R1, 50000), (R1, 50001)].into_iter().enumerate() {
            ingress_to(
                n,
                hook,
                &format!("SYN {i} from outside"),
                &syn(remote.0, remote.1, POOL, 8080),
                inside,
                true,
            );
        }
        assert_eq!(n.inbound_sessions(), 2);
        run(
            n,
            hook,
            "a third SYN from outside",
            &syn(R2, 50002, POOL, 8080).frame(),
            Want::Drop,
            &only(Counter::DropInboundSessionLimit),
        );
        assert_eq!(n.inbound_sessions(), 2);
        // The inside opens sessions as before: a mapping's first, then
        // one in SESSIONS.
        let out = udp(H1, 5000, R1, 53);
        let public = egress_first(n, "an inside host's first datagram", &out);
        egress_again(
            n,
            "to a second server",
            &udp(H1, 5000, R2, 53),
            public,
            true,
        );
        assert_eq!(n.inbound_sessions(), 2);
    });
}

// ================================================================ TCP pickup

/// The TCP segments without SYN a connection may go on with, each of which
/// opens a session under `--tcp-pickup on` (the default) and nothing under
/// `off`.
fn no_syn_flags() -> [(&'static str, u8); 4] {
    use tcp_flags::{ACK, FIN, PSH, RST};
    [
        ("ACK", ACK),
        ("data", ACK | PSH),
        ("FIN", FIN | ACK),
        ("RST", RST),
    ]
}

/// `--tcp-pickup on` (the default, whatever the allocation): an outbound
/// TCP segment without SYN makes the mapping and its session (PICKUP_OUT;
/// an RST alone makes it TRANSITORY), the remote's answer makes it
/// ESTABLISHED; an inbound one that filtering admits makes a session
/// (PICKUP_IN), the inside's answer makes it ESTABLISHED.
#[test]
fn tcp_pickup_on_opens_mid_stream() {
    use nat_common::{TCP_PICKUP_IN, TCP_PICKUP_OUT, TCP_TRANSITORY};
    use tcp_flags::ACK;
    assert_eq!(
        nat_userspace::settings::napt::NaptSettings::default()
            .config()
            .tcp_pickup,
        0
    );
    per_ingress_hook(
        || napt_with(|c| c.filtering = Filtering::EndpointIndependent.code()),
        |n, hook| {
            for (i, (what, flags)) in no_syn_flags().into_iter().enumerate() {
                let port = 41000 + i as u16;
                let first = seg(H1, port, R1, 443, flags);
                let public = egress_first(n, &format!("outbound {what}"), &first);
                let sk = session_key(TCP, (H1, port), (R1, 443));
                let want = if what == "RST" {
                    TCP_TRANSITORY
                } else {
                    TCP_PICKUP_OUT
                };
                assert_eq!(session(n, &sk).tcp, want, "outbound {what}");
                if what == "ACK" {
                    ingress_to(
                        n,
                        hook,
                        "the remote's answer",
                        &seg(R1, 443, POOL, public.port, ACK),
                        src_ep(&first),
                        false,
                    );
                    assert_eq!(session(n, &sk).tcp, TCP_ESTABLISHED);
                }
                // Inbound, from another remote, through the mapping
                // (endpoint-independent filtering admits it).
                let remote = (R2, 50000 + i as u16);
                ingress_to(
                    n,
                    hook,
                    &format!("inbound {what}"),
                    &seg(remote.0, remote.1, POOL, public.port, flags),
                    src_ep(&first),
                    true,
                );
                let sk = session_key(TCP, (H1, port), remote);
                let want = if what == "RST" {
                    TCP_TRANSITORY
                } else {
                    TCP_PICKUP_IN
                };
                assert_eq!(session(n, &sk).tcp, want, "inbound {what}");
                if what == "ACK" {
                    egress_again(
                        n,
                        "the inside's answer",
                        &seg(H1, port, remote.0, remote.1, ACK),
                        public,
                        false,
                    );
                    assert_eq!(session(n, &sk).tcp, TCP_ESTABLISHED);
                }
            }
        },
    );
}

/// `--tcp-pickup off`: a TCP segment without SYN (an ACK, data, a FIN, an
/// RST alone) that would open a mapping or a session is dropped and counted
/// (`drop_tcp_no_syn`), changing nothing: outbound with no mapping, or to a
/// new remote of a mapping; inbound through endpoint-independent
/// filtering, a port forward or a mapping learned from a peer. A SYN opens
/// as always, UDP is untouched, and a segment of a known session passes.
/// A segment filtering refuses is still counted as filtered.
#[test]
fn tcp_pickup_off_refuses_what_would_open() {
    use nat_common::{MAPPING_PEER, TCP_PICKUP_OFF};
    use tcp_flags::{ACK, SYN};
    let forward = (Endpoint::new(POOL, 8080, TCP), Endpoint::new(H2, 80, TCP));
    let peer = (Endpoint::new(POOL, 9090, TCP), Endpoint::new(H3, 90, TCP));
    let setup = || {
        let mut n = napt_with(|c| {
            c.filtering = Filtering::EndpointIndependent.code();
            c.tcp_pickup = TCP_PICKUP_OFF;
        });
        n.add_forward(forward.0, forward.1);
        n.add_mapping(peer.1, peer.0, MAPPING_PEER, 0);
        n
    };
    per_ingress_hook(setup, |n, hook| {
        for (i, (what, flags)) in no_syn_flags().into_iter().enumerate() {
            let port = 42000 + i as u16;
            run_stateless(
                n,
                Hook::EgressTc,
                &format!("outbound {what}, no mapping"),
                &seg(H1, port, R1, 443, flags).frame(),
                Want::Drop,
                &only(Counter::DropTcpNoSyn),
            );
            assert!(n.napt_out(Endpoint::new(H1, port, TCP)).is_none());
        }
        // A SYN makes the mapping; its own session's segments pass.
        let first = syn(H1, 43000, R1, 443);
        let public = egress_first(n, "SYN", &first);
        ingress_to(
            n,
            hook,
            "SYN-ACK",
            &seg(R1, 443, POOL, public.port, SYN | ACK),
            src_ep(&first),
            false,
        );
        egress_again(n, "ACK", &seg(H1, 43000, R1, 443, ACK), public, false);
        let sk = session_key(TCP, (H1, 43000), (R1, 443));
        assert_eq!(session(n, &sk).tcp, TCP_ESTABLISHED);
        for (what, flags) in no_syn_flags() {
            // Outbound to a new remote of the mapping.
            run_stateless(
                n,
                Hook::EgressTc,
                &format!("outbound {what} to a new remote"),
                &seg(H1, 43000, R2, 443, flags).frame(),
                Want::Drop,
                &only(Counter::DropTcpNoSyn),
            );
            // Inbound from a new remote: endpoint-independent filtering
            // admits it, pickup off refuses it.
            for (to, whom) in [
                (public, "a mapping"),
                (forward.0, "a forward"),
                (peer.0, "a peer mapping"),
            ] {
                run_stateless(
                    n,
                    hook,
                    &format!("inbound {what} to {whom}"),
                    &seg(R2, 50000, POOL, to.port, flags).frame(),
                    Want::Drop,
                    &only(Counter::DropTcpNoSyn),
                );
            }
        }
        // SYNs open sessions as always, both ways; UDP is untouched.
        egress_again(
            n,
            "SYN to a new remote",
            &syn(H1, 43000, R2, 443),
            public,
            true,
        );
        ingress_to(
            n,
            hook,
            "SYN from a new remote",
            &syn(R2, 50001, POOL, public.port),
            src_ep(&first),
            true,
        );
        ingress_to(
            n,
            hook,
            "SYN to the forward",
            &syn(R2, 50002, POOL, 8080),
            forward.1,
            true,
        );
        egress_first(n, "UDP", &udp(H1, 5000, R1, 53));
        ingress_to(
            n,
            hook,
            "UDP from a new remote",
            &udp(R2, 53, POOL, 5000),
            Endpoint::new(H1, 5000, UDP),
            true,
        );
    });
    // Filtering first: a segment address-and-port filtering refuses is
    // counted as filtered, whatever pickup says.
    per_ingress_hook(
        || {
            napt_with(|c| {
                c.filtering = Filtering::AddressAndPort.code();
                c.tcp_pickup = TCP_PICKUP_OFF;
            })
        },
        |n, hook| {
            let public = egress_first(n, "SYN", &syn(H1, 44000, R1, 443));
            run_stateless(
                n,
                hook,
                "ACK from another remote",
                &seg(R2, 443, POOL, public.port, ACK).frame(),
                Want::Drop,
                &only(Counter::DropFiltered),
            );
        },
    );
}

/// Rewriting CONFIG in place (what a reload does) switches pickup at once:
/// off refuses a stray ACK, on again picks it up; a session made meanwhile
/// is unaffected either way.
#[test]
fn tcp_pickup_switches_in_place() {
    use nat_common::{TCP_PICKUP_OFF, TCP_PICKUP_ON, TCP_PICKUP_OUT};
    use tcp_flags::ACK;
    let mut n = napt();
    let public = egress_first(&n, "SYN", &syn(H1, 45000, R1, 443));
    n.update_config(|c| c.tcp_pickup = TCP_PICKUP_OFF);
    run_stateless(
        &n,
        Hook::EgressTc,
        "stray ACK, pickup off",
        &seg(H1, 45001, R1, 443, ACK).frame(),
        Want::Drop,
        &only(Counter::DropTcpNoSyn),
    );
    egress_again(
        &n,
        "the SYN's session",
        &seg(H1, 45000, R1, 443, ACK),
        public,
        false,
    );
    n.update_config(|c| c.tcp_pickup = TCP_PICKUP_ON);
    egress_first(&n, "stray ACK, pickup on", &seg(H1, 45001, R1, 443, ACK));
    let sk = session_key(TCP, (H1, 45001), (R1, 443));
    assert_eq!(session(&n, &sk).tcp, TCP_PICKUP_OUT);
}
