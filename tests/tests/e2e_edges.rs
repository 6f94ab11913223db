//! End-to-end tests of NAPT's edges in network namespaces (root), on the
//! NAPT topology (`xnat_tests::napt_topo`: inside hosts a and b on the
//! gateway's bridge `int0`, a router, servers 203.0.113.10-12; pool
//! 198.51.100.1):
//!
//! A. ICMP errors the gateway itself sends about inbound packets it cannot
//!    forward (time exceeded, fragmentation needed, host unreachable) quote
//!    the public endpoint, never the inside one, with valid checksums
//!    (`icmp_errors_local_translated`). Each in XDP and TC ingress mode,
//!    without and with `--fast-path`.
//! B. TCP sessions follow RFC 6146's state machine (`xnat flows` states
//!    FIN_OUT, TRANSITORY, FIN_BOTH, ...): a half-closed connection and one
//!    that saw a reset live on past the transitory timeout, a closed one
//!    goes after it.
//! C. Unsolicited inbound SYNs to pool ports are dropped silently (RFC 5382
//!    REQ-4, `drop_unsolicited_syn`), ports outside `--ports` stay the
//!    gateway's own, and a simultaneous open works.
//! D. A flood of inbound SYNs to a port forward cannot take the session
//!    table from the inside hosts (`--max-inbound-sessions`,
//!    `drop_inbound_session_limit`).
//!
//! What the outside sees is read from raw sockets in the server's (or an
//! inside host's) namespace (`xnat_tests::capture`), parsed and checked
//! byte by byte with checksums computed here; crafted packets (a TTL that
//! runs out at the gateway, an out-of-window RST, spoofed SYNs) are sent
//! with IP_HDRINCL raw sockets. The machine running these is shared and
//! loaded: every wait polls for a condition with a generous deadline, and
//! where time passing is the point (timeouts), a canary binding that must
//! expire first proves that it did.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use xnat_tests::capture::{IPPROTO_ICMP, IPPROTO_TCP, IcmpError, RawCapture, TcpSeg, describe_all};
use xnat_tests::flood::{self, inside::FlowPlan, syns::Pace};
use xnat_tests::frame::{Packet, Tcp, Udp, tcp_flags};
use xnat_tests::hairpin_topo::RawIp;
use xnat_tests::napt_topo::{
    ConnectState, Flow, HOST_A, IO_TIMEOUT, NaptTopo, POOL, SRV1, SRV2, SRV3, connect_state,
    ip_mtu, napt_args, recv_within, sa, set_pmtudisc_do, show_flows, tcp_connect,
    tcp_connect_start, tcp_listen, udp_bind, udp_deliver, v4,
};
use xnat_tests::topology::Ingress;
use xnat_tests::traffic::accept_within;
use xnat_tests::wait::{SOON, wait_for, wait_until};
use xnat_tests::{both_modes, four_ways, tc_only};

four_ways!(time_exceeded_quotes_public_endpoint, "te");
four_ways!(frag_needed_quotes_public_endpoint, "fn");
four_ways!(host_unreachable_quotes_public_forward, "hu");
tc_only!(half_close_outlives_transitory_timeout, "hc");
both_modes!(rst_then_data_back_to_established, "rst");
tc_only!(both_fins_then_gone_after_transitory_timeout, "fin");
both_modes!(unsolicited_syns_dropped_silently, "syn");
both_modes!(simultaneous_open, "sim");
both_modes!(inbound_flood_does_not_starve_inside, "fld");

/// The pool address (a pool of one).
const PUB: Ipv4Addr = POOL[0];

/// Whether `a` is an inside address (10/8): nothing leaving EXT may name one.
fn inside_addr(a: Ipv4Addr) -> bool {
    a.octets()[0] == 10
}

/// Sends `msg` one way over a TCP connection and checks it arrives intact.
fn tcp_send(from: &TcpStream, to: &TcpStream, msg: &[u8]) {
    (&*from)
        .write_all(msg)
        .unwrap_or_else(|e| panic!("TCP write {:?}: {e}", from.local_addr()));
    let mut got = vec![0u8; msg.len()];
    (&*to)
        .read_exact(&mut got)
        .unwrap_or_else(|e| panic!("TCP read {:?}: {e}", to.local_addr()));
    assert_eq!(got, msg, "TCP data corrupted");
}

/// Sends `msg` one way; `Err` (with what went wrong) instead of a panic if
/// it does not arrive within the stream's timeouts.
fn try_tcp_send(from: &TcpStream, to: &TcpStream, msg: &[u8]) -> Result<(), String> {
    let name = |s: &TcpStream| s.local_addr().map_or("?".into(), |a| a.to_string());
    (&*from)
        .write_all(msg)
        .map_err(|e| format!("write on {}: {e}", name(from)))?;
    let mut got = vec![0u8; msg.len()];
    (&*to)
        .read_exact(&mut got)
        .map_err(|e| format!("read on {}: {e}", name(to)))?;
    if got != msg {
        return Err("data corrupted".into());
    }
    Ok(())
}

/// Accepts one connection, with read/write timeouts set.
fn accept(l: &std::net::TcpListener) -> (TcpStream, SocketAddrV4) {
    let (s, peer) = accept_within(l, IO_TIMEOUT);
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    (s, v4(peer))
}

/// The TCP flow of `inside` with `remote`, if listed.
fn tcp_flow(t: &NaptTopo, inside: SocketAddrV4, remote: SocketAddrV4) -> Option<Flow> {
    t.flows(&["--proto", "tcp", "--inside", &inside.ip().to_string()])
        .into_iter()
        .find(|f| f.inside == inside && f.remote == remote)
}

/// Waits (bounded) until the TCP flow `inside` ↔ `remote` is listed in a
/// state other than `from`, and returns it.
fn wait_state_other_than(
    t: &NaptTopo,
    inside: SocketAddrV4,
    remote: SocketAddrV4,
    from: &str,
    why: &str,
) -> Flow {
    wait_for(
        SOON,
        &format!("the TCP flow {inside} <-> {remote} to leave {from} ({why})"),
        || tcp_flow(t, inside, remote).filter(|f| f.state != from),
    )
}

/// Waits (bounded, not panicking) for the TCP flow to be listed in state
/// `want`; returns the last state seen ("(not listed)" if it was not).
fn settle_state(t: &NaptTopo, inside: SocketAddrV4, remote: SocketAddrV4, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = tcp_flow(t, inside, remote)
            .map(|f| f.state)
            .unwrap_or_else(|| "(not listed)".into());
        if st == want || Instant::now() >= deadline {
            return st;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Proves that more than the UDP timeout (the transitory one's length in
/// these tests) has passed since now, and that the agent swept after
/// that: a UDP binding opened from host A's `port` now must be gone
/// (expired by the agent). Anything idle since before this call has been
/// idle longer still when it returns.
fn canary_expires(t: &NaptTopo, port: u16, what: &str) {
    let c = udp_bind(&t.a, sa(HOST_A, port));
    let s = udp_bind(&t.srv, sa(SRV2, port));
    udp_deliver(&c, sa(SRV2, port), &s, b"canary");
    let opened = Instant::now();
    wait_until(
        Duration::from_secs(40),
        &format!("the UDP canary from 10.0.0.2:{port} to expire ({what})"),
        || {
            !t.flows(&["--proto", "udp", "--inside", "10.0.0.2"])
                .iter()
                .any(|f| f.inside.port() == port)
        },
    );
    eprintln!(
        "canary 10.0.0.2:{port} expired {:.1} s after it was opened ({what})",
        opened.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// A. ICMP errors the gateway sends itself.

/// Attaches for the ICMP-error tests: NAPT, and with `fast` the fast path
/// on the inside bridge.
fn attach_icmp(t: &mut NaptTopo, fast: bool) {
    let mut extra = vec![];
    if fast {
        extra.extend_from_slice(&["--inside", "int0", "--fast-path"]);
    }
    t.attach(&napt_args(&extra));
}

/// Waits for the ICMP error `typ`/`code` that the server side receives
/// about a datagram from `from` (one of its own endpoints), calling `send`
/// (which sends the offending datagram) up to `tries` times, `per_try`
/// apart. Returns the error and everything the capture saw.
fn await_error(
    cap: &RawCapture,
    typ: u8,
    code: u8,
    from: SocketAddrV4,
    tries: u32,
    per_try: Duration,
    mut send: impl FnMut(),
) -> (Option<IcmpError>, Vec<Vec<u8>>) {
    let mut seen = Vec::new();
    for _ in 0..tries {
        send();
        let hit = cap.wait_for(per_try, &mut seen, |d| {
            IcmpError::parse(d)
                .ok()
                .filter(|e| e.typ == typ && e.code == code && e.quoted_src() == from)
        });
        if hit.is_some() {
            return (hit, seen);
        }
    }
    (None, seen)
}

/// The checks every gateway-made ICMP error must pass on the way out:
/// it quotes `public` (not `inside`), its three checksums hold, and nothing
/// the server side captured names an inside address.
fn check_local_error(
    t: &NaptTopo,
    what: &str,
    err: &IcmpError,
    public: SocketAddrV4,
    inside: SocketAddrV4,
    seen: &[Vec<u8>],
) {
    eprintln!("{what}: {}", err.describe());
    assert!(
        err.quoted_dst() != inside && !inside_addr(*err.quoted_dst().ip()),
        "{what}: the gateway's error left EXT quoting the inside endpoint {} (want the \
         public endpoint {public}): the inside address leaked\n  {}\ncaptured at the \
         server side:\n{}xnat stats: {}",
        err.quoted_dst(),
        err.describe(),
        describe_all(seen),
        t.stats()["counters"]
    );
    assert_eq!(
        err.quoted_dst(),
        public,
        "{what}: quoted destination\n  {}",
        err.describe()
    );
    let bad = err.checksum_problems();
    assert!(bad.is_empty(), "{what}: {bad:?}\n  {}", err.describe());
    for d in seen {
        if let Ok(e) = IcmpError::parse(d) {
            assert!(
                !inside_addr(e.outer_src)
                    && !inside_addr(e.quoted.src)
                    && !inside_addr(e.quoted.dst),
                "{what}: an ICMP error naming an inside address reached the server side:\n  {}",
                e.describe()
            );
        }
    }
}

/// A live UDP binding (10.0.0.2:40000 ↔ 203.0.113.10:7000); the server's
/// next datagram to it arrives at the gateway with TTL 1 (sent with TTL 2
/// from a raw socket: the router takes one). The gateway's time exceeded
/// reaches the server quoting 198.51.100.1:40000, checksums valid (the
/// datagram is quoted whole, so its UDP checksum is checked too).
fn time_exceeded_quotes_public_endpoint(tag: &str, mode: Ingress, fast: bool) {
    let mut t = NaptTopo::new(tag, mode);
    attach_icmp(&mut t, fast);
    let inside = udp_bind(&t.a, sa(HOST_A, 40000));
    let srv = udp_bind(&t.srv, sa(SRV1, 7000));
    let public = udp_deliver(&inside, sa(SRV1, 7000), &srv, b"open the binding");
    assert_eq!(public, sa(PUB, 40000), "port preservation");
    // A round trip first: every neighbour on the way is resolved.
    udp_deliver(&srv, public, &inside, b"warm-up");
    let local0 = t.try_counter("icmp_errors_local_translated");

    let cap = RawCapture::open(&t.srv, IPPROTO_ICMP);
    let raw = RawIp::open(&t.srv);
    // Sent from a raw socket, so its UDP checksum is complete (a socket's
    // may be left partial through the veths in TC mode) and can be checked
    // in the quote.
    let reply = Packet::udp(SRV1, PUB, Udp::new(7000, 40000, b"reply with TTL 2"))
        .with_ttl(2)
        .ip_bytes();
    let (err, seen) = await_error(
        &cap,
        IcmpError::TIME_EXCEEDED,
        0,
        sa(SRV1, 7000),
        3,
        Duration::from_secs(4),
        || raw.send(&reply).expect("send the TTL-2 reply"),
    );
    let err = err.unwrap_or_else(|| {
        panic!(
            "no time exceeded about 203.0.113.10:7000 -> {public} reached the server \
             (3 tries); captured:\n{}",
            describe_all(&seen)
        )
    });
    check_local_error(&t, "time exceeded", &err, public, sa(HOST_A, 40000), &seen);
    assert_eq!(err.quoted_l4_checksum_ok, Some(true), "{}", err.describe());
    let got = recv_within(&inside, Duration::from_millis(200)).unwrap();
    assert!(got.is_none(), "the TTL-2 datagram reached the inside host");
    let local = t.counter("icmp_errors_local_translated");
    assert!(
        local > local0.unwrap_or(0),
        "icmp_errors_local_translated did not grow ({local0:?} -> {local})"
    );
    t.stop_agent();
}

/// The inside bridge's MTU lowered to 1300 (the servers' side raised to
/// 1500); the server sends a 1428-byte DF datagram to a live binding: the
/// gateway's fragmentation needed (3/4, next-hop MTU 1300) reaches the
/// server quoting the public endpoint, and the server's socket (connected
/// to that endpoint) learns the path MTU from it.
fn frag_needed_quotes_public_endpoint(tag: &str, mode: Ingress, fast: bool) {
    let mut t = NaptTopo::new(tag, mode);
    t.rtr.ip(&["link", "set", "eth1", "mtu", "1500"]);
    t.srv.ip(&["link", "set", "eth0", "mtu", "1500"]);
    t.nat.ip(&["link", "set", "int0", "mtu", "1300"]);
    let link = t.nat.ip(&["-o", "link", "show", "int0"]);
    assert!(link.contains("mtu 1300"), "int0: {link}");
    attach_icmp(&mut t, fast);
    let inside = udp_bind(&t.a, sa(HOST_A, 40000));
    let srv = udp_bind(&t.srv, sa(SRV1, 7000));
    let public = udp_deliver(&inside, sa(SRV1, 7000), &srv, b"open the binding");
    assert_eq!(public, sa(PUB, 40000), "port preservation");
    srv.connect(public).unwrap();
    udp_deliver(&srv, public, &inside, b"warm-up");
    set_pmtudisc_do(&srv);
    assert_eq!(ip_mtu(&srv).unwrap(), 1500, "server's initial path MTU");
    let local0 = t.try_counter("icmp_errors_local_translated");

    let cap = RawCapture::open(&t.srv, IPPROTO_ICMP);
    let big = vec![0x5au8; 1400]; // 1428 bytes of IPv4
    let (err, seen) = await_error(
        &cap,
        IcmpError::DEST_UNREACH,
        4,
        sa(SRV1, 7000),
        3,
        Duration::from_secs(4),
        || match srv.send(&big) {
            Ok(_) => {}
            // The server already learned a smaller path MTU.
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {}
            Err(e) => panic!("send 1400 bytes to {public}: {e}"),
        },
    );
    let err = err.unwrap_or_else(|| {
        panic!(
            "no fragmentation needed about 203.0.113.10:7000 -> {public} reached the \
             server (3 tries); captured:\n{}",
            describe_all(&seen)
        )
    });
    check_local_error(
        &t,
        "fragmentation needed",
        &err,
        public,
        sa(HOST_A, 40000),
        &seen,
    );
    assert_eq!(err.next_hop_mtu(), 1300, "{}", err.describe());
    assert_eq!(err.quoted.total_len, 1428, "{}", err.describe());
    // The quote names the server socket's peer, so its kernel takes the
    // path MTU (a quote naming 10.0.0.2 matches no socket).
    wait_until(SOON, "the server socket's path MTU to become 1300", || {
        ip_mtu(&srv).unwrap() == 1300
    });
    let local = t.counter("icmp_errors_local_translated");
    assert!(
        local > local0.unwrap_or(0),
        "icmp_errors_local_translated did not grow ({local0:?} -> {local})"
    );
    t.stop_agent();
}

/// A port forward to an inside address nobody answers ARP for
/// (198.51.100.1:8081 -> 10.0.0.99:80); a SYN from outside to it: after
/// the ARP retries (~3 s) the gateway's host unreachable (3/1) reaches the
/// sender quoting 198.51.100.1:8081, its TCP checksum too.
fn host_unreachable_quotes_public_forward(tag: &str, mode: Ingress, fast: bool) {
    let mut t = NaptTopo::new(tag, mode);
    attach_icmp(&mut t, fast);
    t.xnat_ok(&["forward", "add", "tcp", "198.51.100.1:8081", "10.0.0.99:80"]);
    let local0 = t.try_counter("icmp_errors_local_translated");

    let cap = RawCapture::open(&t.srv, IPPROTO_ICMP);
    let raw = RawIp::open(&t.srv);
    let syn = Packet::tcp(SRV3, PUB, Tcp::syn(45000, 8081)).ip_bytes();
    let (err, seen) = await_error(
        &cap,
        IcmpError::DEST_UNREACH,
        1,
        sa(SRV3, 45000),
        2,
        Duration::from_secs(10),
        || raw.send(&syn).expect("send the SYN"),
    );
    let err = err.unwrap_or_else(|| {
        panic!(
            "no host unreachable about 203.0.113.12:45000 -> 198.51.100.1:8081 reached \
             the server (2 tries, 10 s each); captured:\n{}\nxnat stats: {}",
            describe_all(&seen),
            t.stats()["counters"]
        )
    });
    check_local_error(
        &t,
        "host unreachable",
        &err,
        sa(PUB, 8081),
        sa(Ipv4Addr::new(10, 0, 0, 99), 80),
        &seen,
    );
    assert_eq!(err.quoted_l4_checksum_ok, Some(true), "{}", err.describe());
    let local = t.counter("icmp_errors_local_translated");
    assert!(
        local > local0.unwrap_or(0),
        "icmp_errors_local_translated did not grow ({local0:?} -> {local})"
    );
    t.stop_agent();
}

// ---------------------------------------------------------------------------
// B. TCP states.
//
// Each test records the states it sees along the way and checks the
// connection's behaviour (data still flows after the idle period) before
// the state names: a broken state machine is reported as the connection
// it cuts, a wrong name after that.

/// Timeouts of the TCP-state tests: transitory 5 s, and UDP 5 s for the
/// canaries that prove 5 s have passed.
const SHORT: &[&str] = &["--timeout", "tcp-transitory=5,udp=5"];

/// A connection from 10.0.0.2:`cport` to 203.0.113.10:`sport`, with one
/// exchange each way: (client, server side).
fn connection(t: &NaptTopo, cport: u16, sport: u16) -> (TcpStream, TcpStream) {
    let l = tcp_listen(&t.srv, sa(SRV1, sport));
    let c = tcp_connect(&t.a, sa(HOST_A, cport), sa(SRV1, sport), false)
        .unwrap_or_else(|e| panic!("TCP 10.0.0.2:{cport} -> 203.0.113.10:{sport}: {e}"));
    let (x, peer) = accept(&l);
    assert_eq!(peer, sa(PUB, cport), "the server's view of the client");
    tcp_send(&c, &x, b"hello server");
    tcp_send(&x, &c, b"hello client");
    (c, x)
}

/// The inside client half-closes (FIN out): the session is FIN_OUT and
/// keeps the established lifetime, so well past the transitory timeout
/// (5 s, proven by a canary that expired) the server can still send and
/// the client receives it.
fn half_close_outlives_transitory_timeout(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(SHORT));
    let (inside, remote) = (sa(HOST_A, 40200), sa(SRV1, 7200));
    let (c, x) = connection(&t, 40200, 7200);
    wait_until(SOON, "the flow to be ESTABLISHED", || {
        tcp_flow(&t, inside, remote).is_some_and(|f| f.state == "ESTABLISHED")
    });

    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    (&x).read_to_end(&mut rest)
        .expect("the server reads the client's FIN");
    let after_fin = wait_state_other_than(&t, inside, remote, "ESTABLISHED", "FIN out");
    eprintln!("after the client's FIN: {}", after_fin.raw);

    canary_expires(&t, 40201, "more than the transitory timeout since the FIN");
    let listed = tcp_flow(&t, inside, remote);
    let msg = b"late data from the server after the idle period";
    let delivered = try_tcp_send(&x, &c, msg);
    if let Err(e) = &delivered {
        panic!(
            "the half-closed connection was cut: the server's data after > 5 s idle did not \
             reach 10.0.0.2:40200 ({e}); the session {} (state after the FIN: {})\nflows:\n{}",
            match &listed {
                Some(f) => format!("was still listed: {}", f.raw),
                None => "had expired (transitory timeout)".into(),
            },
            after_fin.state,
            show_flows(&t.flows(&[]))
        );
    }
    let f = listed.expect("the session was not listed after the idle period");
    assert!(f.idle_s >= 5, "idle {} s only: {}", f.idle_s, f.raw);
    let now = tcp_flow(&t, inside, remote).expect("the flow after the late data");
    assert_eq!(
        after_fin.state, "FIN_OUT",
        "state after the FIN: {}",
        after_fin.raw
    );
    assert_eq!(
        now.state, "FIN_OUT",
        "state after the late data: {}",
        now.raw
    );
    t.stop_agent();
}

/// An established connection; from the server's namespace an RST with the
/// connection's addresses and ports but a sequence number far out of the
/// client's window: the NAT passes it (translated) and the session turns
/// TRANSITORY, the client's kernel ignores it. Data then flows, the
/// session is ESTABLISHED again, and it keeps the established lifetime:
/// after more than the transitory timeout idle the server can still talk
/// first.
fn rst_then_data_back_to_established(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(SHORT));
    let (inside, remote) = (sa(HOST_A, 40300), sa(SRV1, 7300));
    let (c, x) = connection(&t, 40300, 7300);
    wait_until(SOON, "the flow to be ESTABLISHED", || {
        tcp_flow(&t, inside, remote).is_some_and(|f| f.state == "ESTABLISHED")
    });

    // The client's next expected sequence number, from a segment it gets.
    let cap = RawCapture::open(&t.a, IPPROTO_TCP);
    tcp_send(&x, &c, b"sequence probe");
    let mut seen = Vec::new();
    let rcv_nxt = cap
        .wait_for(Duration::from_secs(5), &mut seen, |d| {
            TcpSeg::parse(d)
                .filter(|s| s.src == remote && s.dst == inside && s.payload_len > 0)
                .map(|s| s.seq.wrapping_add(s.payload_len as u32))
        })
        .unwrap_or_else(|| {
            panic!(
                "the client's capture saw no data from the server:\n{}",
                describe_all(&seen)
            )
        });

    let rst = Tcp {
        sport: 7300,
        dport: 40300,
        seq: rcv_nxt.wrapping_add(0x8000_0000),
        ack: 0,
        flags: tcp_flags::RST,
        window: 0,
        urgent: 0,
        options: Vec::new(),
        payload: Vec::new(),
    };
    RawIp::open(&t.srv)
        .send(&Packet::tcp(SRV1, PUB, rst).ip_bytes())
        .expect("send the RST");
    cap.wait_for(Duration::from_secs(5), &mut seen, |d| {
        TcpSeg::parse(d).filter(|s| s.src == remote && s.dst == inside && s.has(TcpSeg::RST))
    })
    .unwrap_or_else(|| {
        panic!(
            "the out-of-window RST did not reach the client through the NAT; captured:\n{}",
            describe_all(&seen)
        )
    });
    let after_rst = wait_state_other_than(&t, inside, remote, "ESTABLISHED", "RST in");
    eprintln!("after the RST: {}", after_rst.raw);

    // The client ignored it: the connection carries data both ways.
    tcp_send(&c, &x, b"after the RST, from the client");
    tcp_send(&x, &c, b"after the RST, from the server");
    let after_data = settle_state(&t, inside, remote, "ESTABLISHED");
    eprintln!("after data: {after_data}");

    canary_expires(&t, 40301, "more than the transitory timeout since the data");
    let listed = tcp_flow(&t, inside, remote);
    if let Err(e) = try_tcp_send(&x, &c, b"the server talks first after the idle period") {
        panic!(
            "the connection was cut after the RST: the server's data after > 5 s idle did \
             not reach 10.0.0.2:40300 ({e}); states: after the RST {}, after data {}; the \
             session {}\nflows:\n{}",
            after_rst.state,
            after_data,
            match &listed {
                Some(f) => format!("was still listed: {}", f.raw),
                None => "had expired (transitory timeout)".into(),
            },
            show_flows(&t.flows(&[]))
        );
    }
    tcp_send(&c, &x, b"and back");
    assert_eq!(
        after_rst.state, "TRANSITORY",
        "after the RST: {}",
        after_rst.raw
    );
    assert_eq!(after_data, "ESTABLISHED", "after data following the RST");
    let f = tcp_flow(&t, inside, remote).expect("the flow at the end");
    assert_eq!(f.state, "ESTABLISHED", "{}", f.raw);
    t.stop_agent();
}

/// Both sides close: the session is FIN_BOTH and goes about the transitory
/// timeout (5 s) after its last packet, not before.
fn both_fins_then_gone_after_transitory_timeout(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(SHORT));
    let (inside, remote) = (sa(HOST_A, 40400), sa(SRV1, 7400));
    let (c, x) = connection(&t, 40400, 7400);
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    (&x).read_to_end(&mut rest).unwrap();
    x.shutdown(std::net::Shutdown::Write).unwrap();
    (&c).read_to_end(&mut rest).unwrap();
    drop((c, x));

    // Each side read the other's FIN: both went through the NAT. The
    // state settles with the last ACK; the last packet's time comes from
    // the flow's idle time.
    let state = settle_state(&t, inside, remote, "FIN_BOTH");
    let f = tcp_flow(&t, inside, remote)
        .unwrap_or_else(|| panic!("the flow vanished at once (last state {state})"));
    let last = Instant::now() - Duration::from_secs(f.idle_s);
    wait_until(
        Duration::from_secs(30),
        "the closed connection's session to expire",
        || tcp_flow(&t, inside, remote).is_none(),
    );
    let after = last.elapsed().as_secs_f64();
    eprintln!("state {state}; gone {after:.1} s after the last packet");
    // idle_s is whole seconds: the last packet may be up to 1 s earlier.
    assert!(
        after >= 4.0,
        "gone {after:.1} s after the last packet (< 5 s)"
    );
    assert!(
        after <= 5.0 + 12.0,
        "gone only {after:.1} s after the last packet"
    );
    assert_eq!(state, "FIN_BOTH", "state after both FINs: {}", f.raw);
    t.stop_agent();
}

// ---------------------------------------------------------------------------
// C. Unsolicited SYNs and simultaneous open.

/// With `--ports 1024-39999` and a TCP mapping 10.0.0.2:30600 ↔
/// 203.0.113.10:7600, four connects from 203.0.113.12: to 30500 (in
/// `--ports`, no mapping; an inside listener holds that port) and to 30600
/// (a mapping the filtering refuses) get no answer at all for 6.5 s (no
/// RST, the SYNs counted); to 45000 (outside `--ports`) a listener on the
/// gateway accepts; to 45001 (outside, nothing listening) the gateway's
/// RST refuses it.
fn unsolicited_syns_dropped_silently(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&["--ports", "1024-39999"]));
    let inside_listener = tcp_listen(&t.a, sa(HOST_A, 30500));
    let (_c, _x) = {
        let l = tcp_listen(&t.srv, sa(SRV1, 7600));
        let c = tcp_connect(&t.a, sa(HOST_A, 30600), sa(SRV1, 7600), false).expect("TCP connect");
        let (x, peer) = accept(&l);
        assert_eq!(peer, sa(PUB, 30600), "port preservation");
        (c, x)
    };
    let gw_listener = tcp_listen(&t.nat, sa(PUB, 45000));
    let unsolicited0 = t.try_counter("drop_unsolicited_syn").unwrap_or(0);
    let filtered0 = t.counter("drop_filtered_inbound");

    let cap = RawCapture::open(&t.srv, IPPROTO_TCP);
    let start = Instant::now();
    let silent = [
        (sa(SRV3, 46001), sa(PUB, 30500), "no mapping"),
        (
            sa(SRV3, 46002),
            sa(PUB, 30600),
            "a mapping the filtering refuses",
        ),
    ];
    let silent_socks: Vec<_> = silent
        .iter()
        .map(|(from, to, _)| tcp_connect_start(&t.srv, *from, *to))
        .collect();
    let own = tcp_connect_start(&t.srv, sa(SRV3, 46003), sa(PUB, 45000));
    let refused = tcp_connect_start(&t.srv, sa(SRV3, 46004), sa(PUB, 45001));

    // Outside --ports: the gateway's own stack answers.
    let (_g, peer) = accept_within(&gw_listener, Duration::from_secs(10));
    assert_eq!(v4(peer), sa(SRV3, 46003), "the gateway's listener's peer");
    wait_until(SOON, "the connect to 45000", || {
        matches!(connect_state(&own), ConnectState::Connected)
    });
    let e = wait_for(
        SOON,
        "the connect to 45001 to fail",
        || match connect_state(&refused) {
            ConnectState::Failed(e) => Some(e),
            ConnectState::Connected => panic!("connected to 198.51.100.1:45001"),
            ConnectState::Pending => None,
        },
    );
    assert_eq!(
        e.kind(),
        io::ErrorKind::ConnectionRefused,
        "connect to 198.51.100.1:45001 (outside --ports, nothing listening): {e}"
    );

    // In --ports: silence for at least 6 s (SYNs retransmitted at 1 and 3 s).
    let window = Duration::from_millis(6500);
    let mut seen = cap.collect_for(window.saturating_sub(start.elapsed()));
    seen.extend(cap.collect_for(Duration::from_millis(100)));
    for ((from, to, why), s) in silent.iter().zip(&silent_socks) {
        let answers: Vec<String> = seen
            .iter()
            .filter_map(|d| TcpSeg::parse(d))
            .filter(|g| g.src == *to && g.dst == *from)
            .map(|g| g.describe())
            .collect();
        let state = connect_state(s);
        assert!(
            answers.is_empty() && matches!(state, ConnectState::Pending),
            "unsolicited SYN {from} -> {to} ({why}) was answered within {window:?}: \
             {answers:?}; connect: {state:?}; xnat stats: {}",
            t.stats()["counters"]
        );
    }
    inside_listener.set_nonblocking(true).unwrap();
    match inside_listener.accept() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        r => panic!("the inside listener 10.0.0.2:30500 got {r:?}"),
    }
    let unsolicited = t.counter("drop_unsolicited_syn") - unsolicited0;
    let filtered = t.counter("drop_filtered_inbound") - filtered0;
    eprintln!("drop_unsolicited_syn +{unsolicited}, drop_filtered_inbound +{filtered}");
    assert!(
        unsolicited >= 1,
        "drop_unsolicited_syn +{unsolicited} for the SYNs to 30500"
    );
    assert!(
        unsolicited + filtered >= 2,
        "drops counted: unsolicited +{unsolicited}, filtered +{filtered}"
    );
    t.stop_agent();
}

/// Simultaneous open with `--filtering address-and-port`: the server
/// (203.0.113.10:7700) connects to 198.51.100.1:40700 first; its SYN finds
/// no mapping and is dropped (not answered: the connect stays pending).
/// Then 10.0.0.2:40700 connects to the server; its SYN creates the mapping
/// (port kept) and the two SYNs cross: the connection comes up and carries
/// data both ways.
fn simultaneous_open(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&["--filtering", "address-and-port"]));
    let (inside, remote, public) = (sa(HOST_A, 40700), sa(SRV1, 7700), sa(PUB, 40700));
    let unsolicited0 = t.try_counter("drop_unsolicited_syn");

    let srv = tcp_connect_start(&t.srv, remote, public);
    wait_until(
        SOON,
        "the server's SYN to reach the gateway and be dropped",
        || {
            if let ConnectState::Failed(e) = connect_state(&srv) {
                panic!(
                    "the server's SYN to {public} (before the inside host's) was answered: \
                     {e} (a RST from the gateway); xnat stats: {}",
                    t.stats()["counters"]
                );
            }
            t.try_counter("drop_unsolicited_syn") > unsolicited0
        },
    );
    let cli = tcp_connect_start(&t.a, inside, remote);
    wait_until(
        SOON,
        "both ends of the simultaneous open to connect",
        || {
            let states = [connect_state(&srv), connect_state(&cli)];
            for (who, s) in ["server", "client"].iter().zip(&states) {
                if let ConnectState::Failed(e) = s {
                    panic!(
                        "simultaneous open: the {who}'s connect failed: {e}\nflows:\n{}",
                        show_flows(&t.flows(&[]))
                    );
                }
            }
            states.iter().all(|s| matches!(s, ConnectState::Connected))
        },
    );
    for s in [&srv, &cli] {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    }
    assert_eq!(v4(srv.peer_addr().unwrap()), public);
    tcp_send(&cli, &srv, b"from the inside");
    tcp_send(&srv, &cli, b"from the outside");
    let f = tcp_flow(&t, inside, remote).expect("the flow of the simultaneous open");
    assert!(
        f.public == public && f.state == "ESTABLISHED",
        "flow: {}",
        f.raw
    );
    t.stop_agent();
}

// ---------------------------------------------------------------------------
// D. Inbound floods.

/// `--max-sessions 64` (so at most 32 sessions opened from outside by
/// default) and a port forward 198.51.100.1:8080 -> 10.0.0.5:80; 2,000
/// SYNs with spoofed random sources flood the forward (about 500/s) while
/// the inside hosts open 20 new UDP flows (new sessions of their mappings,
/// each to a server endpoint of its own): every one gets its echo; the
/// refused flood SYNs are counted (`drop_inbound_session_limit`). The
/// scenario is `xnat_tests::flood`'s, which the benchmark runs too.
fn inbound_flood_does_not_starve_inside(tag: &str, mode: Ingress) {
    const FLOOD: u64 = 2000;
    const FLOWS: usize = 20;
    let mut t = NaptTopo::new(tag, mode);
    flood::attach(&mut t, &["--max-sessions", "64"]);
    let mut plan = flood::Plan::new(FlowPlan {
        flows: FLOWS,
        every: Duration::from_millis(50),
        tries: 3,
        try_timeout: Duration::from_secs(1),
    });
    plan.flood.limit = Some(FLOOD);
    // Paced, so the flood lasts while the inside hosts open their flows.
    plan.flood.pace = Some(Pace {
        burst: 10,
        pause: Duration::from_millis(20),
    });
    let fig = flood::run(&t, &plan);
    eprintln!("flood: {}", fig.summary());
    assert!(
        fig.syns_at_flows_start < FLOOD,
        "the flood was over before the inside flows started"
    );
    assert!(
        fig.flows.ok == FLOWS,
        "inside flows during the flood: {}/{FLOWS} got their echo; drop_session_table_full \
         +{}, drop_inbound_session_limit {:?}\nfailed:\n  {}",
        fig.flows.ok,
        fig.refused_table_full,
        fig.refused_inbound_limit,
        fig.flows.failures.join("\n  ")
    );
    let limit = fig
        .refused_inbound_limit
        .expect("`xnat stats --json` has no counter drop_inbound_session_limit");
    assert!(limit > 0, "drop_inbound_session_limit did not grow");
    // `xnat stats` shows the cap (half of --max-sessions by default) and
    // how much of it the flood holds.
    let (inbound, cap) = (
        t.napt_stat("inbound_sessions"),
        t.napt_stat("max_inbound_sessions"),
    );
    assert_eq!(cap, 32, "max_inbound_sessions with --max-sessions 64");
    assert!(
        inbound > 0 && inbound <= cap,
        "inbound_sessions {inbound} (cap {cap})"
    );
    t.stop_agent();
}
