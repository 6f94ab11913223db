//! End-to-end tests of dynamic NAPT (issue 3) in network namespaces (root):
//! real UDP/TCP sockets, ping, traceroute and tcpdump through
//! `xnat attach EXT --pool ...` on the gateway, with two inside namespaces,
//! a router beyond the NAT and three server addresses. The core scenarios
//! (EIM, filtering, port forwards, ICMP errors) run in both ingress modes,
//! the others in TC mode.
//!
//! Topology and addresses: see `xnat_tests::napt_topo`. Every test asserts
//! on `xnat flows --json` and `xnat stats --json` for what it did.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use xnat_tests::napt_topo::{
    Flow, GW_INT, HOST_A, HOST_B, HOST_C, HOST_FWD, IO_TIMEOUT, NaptTopo, POOL, RTR_EXT,
    SRV_LINK_MTU, SRV1, SRV2, SRV3, drain_for, hops, ip_mtu, napt_args, recv_within, sa,
    set_pmtudisc_do, show_flows, tcp_connect, tcp_listen, udp_bind, udp_connected, udp_deliver,
    udp_error_within, v4,
};
use xnat_tests::netns::{BgChild, describe};
use xnat_tests::topology::{Ingress, Topology};
use xnat_tests::traffic::accept_within;
use xnat_tests::wait::{SOON, wait_until};
use xnat_tests::{both_modes, tc_only};

both_modes!(eim_same_public_endpoint_for_two_servers, "eim");
both_modes!(filtering_endpoint_independent, "feif");
both_modes!(filtering_address, "fadf");
both_modes!(filtering_address_and_port, "fapd");
tc_only!(port_preservation_parity_and_collision, "port");
tc_only!(paired_pooling, "pool");
tc_only!(pool_spreads_hosts, "sprd");
tc_only!(max_ports_per_host, "cap");
tc_only!(timeouts_expire_idle_bindings, "tmo");
both_modes!(icmp_errors_reach_the_right_inside_host, "icmp");
tc_only!(port_exhaustion_code_13_and_recovery, "exh");
both_modes!(port_forwards, "fwd");
tc_only!(idle_established_tcp_outlives_short_timeouts, "idle");

/// The first pool address: every test but `paired_pooling` uses a pool of
/// one address.
const PUB: Ipv4Addr = POOL[0];

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

/// Accepts one connection, with read/write timeouts set.
fn accept(l: &std::net::TcpListener) -> (TcpStream, SocketAddrV4) {
    let (s, peer) = accept_within(l, IO_TIMEOUT);
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    (s, v4(peer))
}

/// Panics unless `l` has no pending connection.
fn assert_no_connection(l: &std::net::TcpListener, what: &str) {
    l.set_nonblocking(true).unwrap();
    match l.accept() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("{what}: a connection from {peer} got through"),
        Err(e) => panic!("{what}: accept: {e}"),
    }
}

/// The one flow of `flows` with this inside and remote endpoint.
fn find_flow(flows: &[Flow], inside: SocketAddrV4, remote: SocketAddrV4) -> &Flow {
    let mut m = flows
        .iter()
        .filter(|f| f.inside == inside && f.remote == remote);
    let f = m.next().unwrap_or_else(|| {
        panic!(
            "no flow {inside} <-> {remote} in `xnat flows`:\n{}",
            show_flows(flows)
        )
    });
    assert!(
        m.next().is_none(),
        "two flows {inside} <-> {remote}:\n{}",
        show_flows(flows)
    );
    f
}

/// Waits for `child` (bounded) and returns its stdout; panics unless it
/// exited 0.
fn finish(mut child: BgChild, timeout: Duration) -> String {
    let st = child.wait_exit(timeout);
    assert!(
        st.success(),
        "`{}` failed ({}):\nstdout: {}\nstderr: {}",
        child.what(),
        describe(st),
        child.stdout(),
        child.stderr()
    );
    child.stdout()
}

// ---------------------------------------------------------------------------
// 1. Endpoint-independent mapping.

/// One inside endpoint talking to two servers is seen by both as the same
/// public address and port (RFC 4787 REQ-1, RFC 5382 REQ-1), for UDP and
/// for TCP (two connections sharing one inside port via SO_REUSEADDR).
fn eim_same_public_endpoint_for_two_servers(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&[]));
    let created0 = t.counter("napt_mappings_created");
    let sessions0 = t.counter("napt_sessions_created");

    // UDP.
    let inside = udp_bind(&t.a, sa(HOST_A, 40000));
    let s1 = udp_bind(&t.srv, sa(SRV1, 7000));
    let s2 = udp_bind(&t.srv, sa(SRV2, 7000));
    let seen1 = udp_deliver(&inside, sa(SRV1, 7000), &s1, b"eim to server 1");
    let seen2 = udp_deliver(&inside, sa(SRV2, 7000), &s2, b"eim to server 2");
    let want = sa(PUB, 40000);
    assert_eq!(
        seen1, want,
        "server 1's view of 10.0.0.2:40000 (port preserved)"
    );
    assert_eq!(seen2, want, "server 2's view of 10.0.0.2:40000 (EIM)");
    // Both servers reach the one inside socket through that endpoint.
    for (srv, from) in [(&s1, sa(SRV1, 7000)), (&s2, sa(SRV2, 7000))] {
        let got = udp_deliver(srv, want, &inside, format!("reply from {from}").as_bytes());
        assert_eq!(got, from, "reply source at the inside host");
    }
    let flows = t.flows(&["--proto", "udp", "--inside", "10.0.0.2"]);
    assert_eq!(flows.len(), 2, "udp flows:\n{}", show_flows(&flows));
    for remote in [sa(SRV1, 7000), sa(SRV2, 7000)] {
        let f = find_flow(&flows, sa(HOST_A, 40000), remote);
        assert!(
            f.public == want && f.proto == "udp" && f.packets_out >= 1 && f.packets_in >= 1,
            "flow to {remote}: {}",
            f.raw
        );
    }
    assert_eq!(
        t.counter("napt_mappings_created") - created0,
        1,
        "one UDP mapping"
    );
    assert_eq!(
        t.counter("napt_sessions_created") - sessions0,
        2,
        "two UDP sessions"
    );
    assert_eq!(t.napt_stat("mappings"), 1);
    assert_eq!(t.napt_stat("sessions"), 2);
    assert_eq!(t.ports_in_use(PUB), 1);

    // TCP: two connections from 10.0.0.2:40001 to two servers.
    let l1 = tcp_listen(&t.srv, sa(SRV1, 7001));
    let l2 = tcp_listen(&t.srv, sa(SRV2, 7001));
    let local = sa(HOST_A, 40001);
    let c1 = tcp_connect(&t.a, local, sa(SRV1, 7001), true)
        .unwrap_or_else(|e| panic!("TCP {local} -> {SRV1}:7001: {e}"));
    let c2 = tcp_connect(&t.a, local, sa(SRV2, 7001), true)
        .unwrap_or_else(|e| panic!("TCP {local} -> {SRV2}:7001: {e}"));
    let (x1, p1) = accept(&l1);
    let (x2, p2) = accept(&l2);
    let want = sa(PUB, 40001);
    assert_eq!(p1, want, "server 1's view of the TCP client");
    assert_eq!(p2, want, "server 2's view of the TCP client (EIM)");
    for (c, x) in [(&c1, &x1), (&c2, &x2)] {
        tcp_send(c, x, b"hello server");
        tcp_send(x, c, b"hello client");
    }
    let flows = t.flows(&["--proto", "tcp", "--inside", "10.0.0.2"]);
    assert_eq!(flows.len(), 2, "tcp flows:\n{}", show_flows(&flows));
    for remote in [sa(SRV1, 7001), sa(SRV2, 7001)] {
        let f = find_flow(&flows, local, remote);
        assert!(
            f.public == want && f.state == "ESTABLISHED",
            "flow to {remote}: {}",
            f.raw
        );
    }
    assert_eq!(
        t.counter("napt_mappings_created") - created0,
        2,
        "one UDP and one TCP mapping"
    );
    assert_eq!(t.napt_stat("mappings"), 2);
    assert_eq!(t.ports_in_use(PUB), 2);

    t.stop_agent();
}

// ---------------------------------------------------------------------------
// 2. Filtering.

/// After 10.0.0.2:40000 sent to 203.0.113.10:7000, three remotes send to
/// its public endpoint: (a) 203.0.113.10:7000, (b) 203.0.113.10:7001,
/// (c) 203.0.113.12:7000. `admit` says which the mode lets in; exactly
/// those reach the inside socket, the others are counted in
/// `drop_filtered_inbound`. Then unsolicited traffic to public ports
/// without a mapping never reaches any inside host.
fn filtering(tag: &str, mode: Ingress, filtering: &str, admit: [bool; 3]) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&["--filtering", filtering]));
    let st = t.stats();
    assert_eq!(st["napt"]["filtering"], filtering, "stats: {st}");

    let inside = udp_bind(&t.a, sa(HOST_A, 40000));
    let remotes = [sa(SRV1, 7000), sa(SRV1, 7001), sa(SRV3, 7000)];
    let socks: Vec<_> = remotes.iter().map(|r| udp_bind(&t.srv, *r)).collect();
    let public = udp_deliver(&inside, remotes[0], &socks[0], b"open the mapping");
    assert_eq!(public, sa(PUB, 40000));
    // A full round trip first, so every neighbour entry on the way is
    // resolved before the probes are counted.
    udp_deliver(&socks[0], public, &inside, b"warm-up");

    let dropped0 = t.counter("drop_filtered_inbound");
    let labels = ["a", "b", "c"];
    for (i, s) in socks.iter().enumerate() {
        s.send_to(labels[i].as_bytes(), public)
            .unwrap_or_else(|e| panic!("probe {} from {}: {e}", labels[i], remotes[i]));
    }
    let refused = admit.iter().filter(|a| !**a).count() as u64;
    let want: BTreeSet<(String, SocketAddrV4)> = (0..3)
        .filter(|i| admit[*i])
        .map(|i| (labels[i].to_string(), remotes[i]))
        .collect();
    // The refused probes are counted when the NAT drops them; the admitted
    // ones arrive. Both are positive signals, waited for with a deadline.
    wait_until(
        SOON,
        &format!("drop_filtered_inbound to grow by {refused}"),
        || t.counter("drop_filtered_inbound") - dropped0 >= refused,
    );
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + SOON;
    while got.len() < want.len() && Instant::now() < deadline {
        if let Some((d, from)) = recv_within(&inside, Duration::from_millis(100)).unwrap() {
            got.insert((String::from_utf8_lossy(&d).into_owned(), v4(from)));
        }
    }
    // Then a short bounded window in which nothing else may show up (the
    // refused probes were already counted as dropped, this catches a
    // datagram that got through anyway).
    for (d, from) in drain_for(&inside, Duration::from_millis(300)) {
        got.insert((String::from_utf8_lossy(&d).into_owned(), v4(from)));
    }
    assert_eq!(
        got, want,
        "--filtering {filtering}: probes that reached 10.0.0.2:40000 (want exactly {want:?})"
    );
    assert_eq!(
        t.counter("drop_filtered_inbound") - dropped0,
        refused,
        "--filtering {filtering}: drop_filtered_inbound"
    );
    // The sessions are the opening one plus one per admitted remote.
    let flows = t.flows(&["--proto", "udp", "--inside", "10.0.0.2"]);
    let have: BTreeSet<SocketAddrV4> = flows.iter().map(|f| f.remote).collect();
    let mut expect: BTreeSet<SocketAddrV4> = want.iter().map(|(_, r)| *r).collect();
    expect.insert(remotes[0]);
    assert_eq!(have, expect, "sessions:\n{}", show_flows(&flows));
    assert!(
        flows.iter().all(|f| f.public == public),
        "{}",
        show_flows(&flows)
    );

    // Unsolicited traffic to public ports without a mapping never goes
    // inside: UDP goes to the gateway itself (it owns the pool address),
    // which answers port unreachable; a TCP SYN to a port of the pool's
    // range gets no answer at all (RFC 5382 REQ-4), not the gateway's
    // reset.
    let translated0 = t.counter("ingress_translated_packets");
    let unsolicited0 = t.counter("drop_unsolicited_syn");
    let quiet_a = udp_bind(&t.a, sa(HOST_A, 40002));
    let quiet_b = udp_bind(&t.b, sa(HOST_B, 40002));
    let l_a = tcp_listen(&t.a, sa(HOST_A, 40003));
    let prober = udp_connected(&t.srv, sa(SRV3, 0), sa(PUB, 40002));
    let e = udp_error_within(&prober, b"unsolicited", Duration::from_secs(3))
        .expect("no port unreachable for unsolicited UDP to 198.51.100.1:40002");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    let e = tcp_connect(&t.srv, sa(SRV3, 0), sa(PUB, 40003), false)
        .expect_err("unsolicited TCP connect to 198.51.100.1:40003 succeeded");
    assert_eq!(e.raw_os_error(), Some(libc::EINPROGRESS), "answered: {e}");
    assert!(t.counter("drop_unsolicited_syn") > unsolicited0);
    for q in [&quiet_a, &quiet_b] {
        let got = drain_for(q, Duration::from_millis(300));
        assert!(
            got.is_empty(),
            "unsolicited UDP reached {:?}: {got:?}",
            q.local_addr()
        );
    }
    assert_no_connection(&l_a, "unsolicited TCP to 198.51.100.1:40003");
    assert_eq!(
        t.counter("ingress_translated_packets"),
        translated0,
        "unsolicited packets were translated inbound"
    );

    t.stop_agent();
}

fn filtering_endpoint_independent(tag: &str, mode: Ingress) {
    filtering(tag, mode, "endpoint-independent", [true, true, true]);
}

fn filtering_address(tag: &str, mode: Ingress) {
    filtering(tag, mode, "address", [true, true, false]);
}

fn filtering_address_and_port(tag: &str, mode: Ingress) {
    filtering(tag, mode, "address-and-port", [true, false, false]);
}

// ---------------------------------------------------------------------------
// 3. Port preservation, parity, range, collisions.

/// Inside endpoints on two hosts with the same ports: the first keeps its
/// port, the second gets a different one with the same parity and range;
/// replies reach the right host. `ports` names the inside ports (an even
/// and an odd one) and `range` the class they must stay in.
fn collide(t: &NaptTopo, ports: [u16; 2], range: std::ops::RangeInclusive<u16>) {
    let srv = udp_bind(&t.srv, sa(SRV1, 7000));
    let mut seen = Vec::new();
    for p in ports {
        for (ns, host) in [(&t.a, HOST_A), (&t.b, HOST_B)] {
            let s = udp_bind(ns, sa(host, p));
            let public = udp_deliver(&s, sa(SRV1, 7000), &srv, format!("{host}:{p}").as_bytes());
            seen.push((s, sa(host, p), public));
        }
    }
    let mut publics = BTreeSet::new();
    for (_, inside, public) in &seen {
        assert_eq!(*public.ip(), PUB, "{inside} seen as {public}");
        assert!(
            publics.insert(*public),
            "{public} handed out twice: {seen:?}"
        );
        if inside.ip() == &HOST_A {
            assert_eq!(public.port(), inside.port(), "{inside}: port not preserved");
        } else {
            let (p, q) = (public.port(), inside.port());
            assert_ne!(p, q, "{inside} collides with 10.0.0.2:{q}");
            assert_eq!(p % 2, q % 2, "{inside} -> {public}: parity not kept");
            assert!(
                range.contains(&p),
                "{inside} -> {public}: outside {range:?}"
            );
        }
    }
    // Replies to each public endpoint reach the right inside socket.
    for (s, inside, public) in &seen {
        let from = udp_deliver(&srv, *public, s, format!("to {inside}").as_bytes());
        assert_eq!(from, sa(SRV1, 7000));
    }
    let flows = t.flows(&["--proto", "udp"]);
    for (_, inside, public) in &seen {
        let f = find_flow(&flows, *inside, sa(SRV1, 7000));
        assert_eq!(f.public, *public, "flow of {inside}: {}", f.raw);
    }
    assert_eq!(t.napt_stat("mappings"), 4);
    assert_eq!(t.ports_in_use(PUB), 4);
}

fn port_preservation_parity_and_collision(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&[]));
    collide(&t, [40000, 40001], 1024..=65535);
    t.stop_agent();

    // Ports below 1024 stay below 1024 when --ports allows it.
    t.attach(&napt_args(&["--ports", "1-65535"]));
    collide(&t, [1000, 1001], 1..=1023);
    t.stop_agent();
}

// ---------------------------------------------------------------------------
// Paired pooling.

/// With a pool of four addresses, every flow of one inside host (UDP from
/// several ports, TCP, ICMP echo) uses the same public address.
fn paired_pooling(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&[
        "--pool",
        "198.51.100.1-198.51.100.4",
        "--internal",
        "10.0.0.0/8",
    ]);
    let srv = udp_bind(&t.srv, sa(SRV1, 7000));
    let srv2 = udp_bind(&t.srv, sa(SRV2, 7000));
    let listener = tcp_listen(&t.srv, sa(SRV1, 7001));
    let mut seen_addr = Vec::new();
    for (ns, host) in [(&t.a, HOST_A), (&t.b, HOST_B), (&t.b, HOST_C)] {
        let mut addrs = BTreeSet::new();
        for port in 41000..41006 {
            let s = udp_bind(ns, sa(host, port));
            // A message of its own: a late duplicate of an earlier host's
            // (udp_deliver resends on a slow machine) must not be taken
            // for this host's.
            let msg = format!("pool {host}:{port}");
            addrs.insert(*udp_deliver(&s, sa(SRV1, 7000), &srv, msg.as_bytes()).ip());
            addrs.insert(*udp_deliver(&s, sa(SRV2, 7000), &srv2, msg.as_bytes()).ip());
        }
        let c = tcp_connect(ns, sa(host, 0), sa(SRV1, 7001), false)
            .unwrap_or_else(|e| panic!("TCP from {host}: {e}"));
        let (_x, peer) = accept(&listener);
        addrs.insert(*peer.ip());
        drop(c);
        let out = ns.run(
            Duration::from_secs(10),
            &[
                "ping",
                "-n",
                "-c",
                "1",
                "-W",
                "3",
                "-I",
                &host.to_string(),
                "203.0.113.10",
            ],
        );
        assert!(
            out.status.success(),
            "ping from {host} through the NAT failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            addrs.len(),
            1,
            "{host} seen from several addresses: {addrs:?}"
        );
        let addr = addrs.into_iter().next().unwrap();
        assert!(
            POOL.contains(&addr),
            "{host} seen as {addr}, not a pool address"
        );
        let flows = t.flows(&["--inside", &host.to_string()]);
        let protos: BTreeSet<&str> = flows.iter().map(|f| f.proto.as_str()).collect();
        assert_eq!(
            protos,
            BTreeSet::from(["icmp", "tcp", "udp"]),
            "flows of {host}:\n{}",
            show_flows(&flows)
        );
        assert!(
            flows.iter().all(|f| *f.public.ip() == addr),
            "flows of {host} not all on {addr}:\n{}",
            show_flows(&flows)
        );
        seen_addr.push((host, addr));
    }
    eprintln!("paired pooling: {seen_addr:?}");
    // Each host holds 6 UDP + 1 TCP + 1 ICMP public ports on its address.
    let mut per_addr = std::collections::BTreeMap::<Ipv4Addr, u64>::new();
    for (_, a) in &seen_addr {
        *per_addr.entry(*a).or_default() += 8;
    }
    for p in POOL {
        assert_eq!(
            t.ports_in_use(p),
            per_addr.get(&p).copied().unwrap_or(0),
            "pool_ports_in_use[{p}]"
        );
    }
    t.stop_agent();
}

/// Twelve inside hosts and a pool of four addresses: the hash that pairs a
/// host with a pool address must spread them, or the pool is no bigger
/// than one address. (With any reasonable hash, all twelve landing on one
/// address has a probability of 4 · 4^-12 ≈ 2e-7.)
fn pool_spreads_hosts(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    let extra: Vec<Ipv4Addr> = (6..=13).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
    for a in &extra {
        t.b.ip(&["addr", "add", &format!("{a}/24"), "dev", "eth0"]);
    }
    t.attach(&[
        "--pool",
        "198.51.100.1-198.51.100.4",
        "--internal",
        "10.0.0.0/8",
    ]);
    let srv = udp_bind(&t.srv, sa(SRV1, 7000));
    let hosts = [HOST_A, HOST_B, HOST_C, HOST_FWD]
        .into_iter()
        .chain(extra.iter().copied());
    let mut seen = std::collections::BTreeMap::new();
    for h in hosts {
        let ns = if h == HOST_A { &t.a } else { &t.b };
        let s = udp_bind(ns, sa(h, 42000));
        let p = udp_deliver(&s, sa(SRV1, 7000), &srv, h.to_string().as_bytes());
        seen.insert(h, *p.ip());
    }
    let used: BTreeSet<Ipv4Addr> = seen.values().copied().collect();
    let st = t.stats();
    assert!(
        used.len() >= 2,
        "all {} inside hosts were paired with the same pool address {used:?} \
         out of 198.51.100.1-4: {seen:?}\npool_ports_in_use: {}",
        seen.len(),
        st["napt"]["pool_ports_in_use"]
    );
    t.stop_agent();
}

/// `--max-ports-per-host 2`: a host's third mapping is refused (and
/// counted) while another host still gets ports.
fn max_ports_per_host(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&["--max-ports-per-host", "2"]));
    let srv = udp_bind(&t.srv, sa(SRV1, 7000));
    let a1 = udp_bind(&t.a, sa(HOST_A, 40000));
    let a2 = udp_bind(&t.a, sa(HOST_A, 40001));
    udp_deliver(&a1, sa(SRV1, 7000), &srv, b"a1");
    udp_deliver(&a2, sa(SRV1, 7000), &srv, b"a2");
    let capped0 = t.counter("drop_host_port_cap");
    let a3 = udp_bind(&t.a, sa(HOST_A, 40002));
    a3.send_to(b"a3", sa(SRV1, 7000)).unwrap();
    wait_until(
        Duration::from_secs(3),
        "drop_host_port_cap to count the third mapping of 10.0.0.2",
        || t.counter("drop_host_port_cap") > capped0,
    );
    let got = drain_for(&srv, Duration::from_millis(300));
    assert!(got.is_empty(), "a capped flow reached the server: {got:?}");
    // Another host is not affected; A's existing mappings still work.
    let b1 = udp_bind(&t.b, sa(HOST_B, 40000));
    udp_deliver(&b1, sa(SRV1, 7000), &srv, b"b1");
    udp_deliver(&a1, sa(SRV1, 7000), &srv, b"a1 again");
    let flows = t.flows(&["--inside", "10.0.0.2"]);
    assert_eq!(flows.len(), 2, "flows of 10.0.0.2:\n{}", show_flows(&flows));
    assert_eq!(t.napt_stat("mappings"), 3);
    t.stop_agent();
}

// ---------------------------------------------------------------------------
// 4. Timeouts.

/// Short timeouts for UDP, ICMP and TCP transitory: each binding disappears
/// from `xnat flows` and the stats after its idle timeout (not before), and
/// a new flow from the same inside port creates a new mapping.
fn timeouts_expire_idle_bindings(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&["--timeout", "udp=2,icmp=2,tcp-transitory=3"]));
    let srv = udp_bind(&t.srv, sa(SRV1, 7000));
    let listener = tcp_listen(&t.srv, sa(SRV1, 7001));
    let inside = udp_bind(&t.a, sa(HOST_A, 40000));

    // UDP.
    let p = udp_deliver(&inside, sa(SRV1, 7000), &srv, b"udp");
    assert_eq!(p, sa(PUB, 40000));
    let udp_last = Instant::now();
    // ICMP echo.
    let out = t.a.run(
        Duration::from_secs(10),
        &["ping", "-n", "-c", "1", "-W", "3", "203.0.113.10"],
    );
    assert!(
        out.status.success(),
        "ping: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let icmp_last = Instant::now();
    // TCP, closed by both sides: transitory.
    let c = tcp_connect(&t.a, sa(HOST_A, 40001), sa(SRV1, 7001), false).expect("TCP connect");
    let (x, _) = accept(&listener);
    tcp_send(&c, &x, b"tcp");
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    (&x).read_to_end(&mut rest).unwrap();
    x.shutdown(std::net::Shutdown::Write).unwrap();
    (&c).read_to_end(&mut rest).unwrap();
    drop((c, x));

    let flows = t.flows(&["--inside", "10.0.0.2"]);
    let by_proto = |p: &str| flows.iter().filter(|f| f.proto == p).count();
    assert!(
        by_proto("udp") == 1 && by_proto("icmp") == 1 && by_proto("tcp") == 1,
        "flows before expiry:\n{}",
        show_flows(&flows)
    );
    for f in &flows {
        let max = if f.proto == "tcp" { 3 } else { 2 };
        assert!(f.expires_in_s <= max, "expires_in_s > {max}: {}", f.raw);
    }
    // Wait until everything is gone; the TCP close may take a moment to
    // reach FIN_BOTH, so its idle time is taken from `xnat flows`.
    let tcp = wait_flow_state(&t, "tcp", "FIN_BOTH");
    let tcp_last = Instant::now() - Duration::from_secs(tcp.idle_s);
    let created0 = t.counter("napt_mappings_created");
    assert_eq!(created0, 3, "one mapping per protocol");

    let mut gone: [Option<Instant>; 3] = [None; 3];
    let protos = ["udp", "icmp", "tcp"];
    wait_until(
        Duration::from_secs(8),
        "the UDP, ICMP and TCP bindings to expire",
        || {
            let flows = t.flows(&["--inside", "10.0.0.2"]);
            let now = Instant::now();
            for (i, p) in protos.iter().enumerate() {
                if gone[i].is_none() && !flows.iter().any(|f| f.proto == *p) {
                    gone[i] = Some(now);
                }
            }
            gone.iter().all(Option::is_some) && t.napt_stat("mappings") == 0
        },
    );
    for (i, (last, secs)) in [(udp_last, 2.0), (icmp_last, 2.0), (tcp_last, 3.0)]
        .into_iter()
        .enumerate()
    {
        let after = gone[i].unwrap().duration_since(last).as_secs_f64();
        eprintln!(
            "{} binding gone {after:.2} s after its last packet",
            protos[i]
        );
        // The agent deletes a binding idle for more than its timeout; the
        // margin covers the whole-second idle_s of the TCP estimate.
        let min = if protos[i] == "tcp" {
            secs - 1.0
        } else {
            secs - 0.1
        };
        assert!(
            after >= min,
            "{} binding expired after {after:.2} s < {secs} s",
            protos[i]
        );
    }
    assert_eq!(t.napt_stat("sessions"), 0);
    assert_eq!(t.ports_in_use(PUB), 0);

    // Same inside port again: a fresh mapping.
    let p2 = udp_deliver(&inside, sa(SRV1, 7000), &srv, b"udp again");
    assert_eq!(*p2.ip(), PUB);
    assert_eq!(
        t.counter("napt_mappings_created"),
        created0 + 1,
        "mapping recreated"
    );
    let flows = t.flows(&["--proto", "udp", "--inside", "10.0.0.2"]);
    let f = find_flow(&flows, sa(HOST_A, 40000), sa(SRV1, 7000));
    assert!(f.public == p2 && f.age_s <= 1, "recreated flow: {}", f.raw);

    t.stop_agent();
}

/// Waits for the one flow of `proto` of 10.0.0.2 to reach `state`.
fn wait_flow_state(t: &NaptTopo, proto: &str, state: &str) -> Flow {
    let mut last = Vec::new();
    let mut found = None;
    wait_until(
        Duration::from_secs(3),
        &format!("the {proto} flow to be {state}"),
        || {
            last = t.flows(&["--proto", proto, "--inside", "10.0.0.2"]);
            found = last.iter().find(|f| f.state == state).cloned();
            found.is_some()
        },
    );
    found.unwrap()
}

// ---------------------------------------------------------------------------
// 5. ICMP errors from beyond the NAT.

/// Runs traceroute with `extra` options from hosts A and B at once; each
/// must see the gateway, the router and the server.
fn traceroutes(t: &NaptTopo, label: &str, extra: &[&str]) {
    let want: Vec<Option<String>> = [GW_INT, RTR_EXT, SRV1]
        .iter()
        .map(|a| Some(a.to_string()))
        .collect();
    // Three probes per hop: the gateway's own time-exceeded messages are
    // rate-limited by the kernel, and two hosts trace at once, so a single
    // probe can go unanswered without anything being wrong. A hop counts
    // if any probe came back.
    let mut args = vec!["traceroute", "-n", "-q", "3", "-w", "2", "-m", "4"];
    args.extend_from_slice(extra);
    args.push("203.0.113.10");
    let children: Vec<_> = [(&t.a, HOST_A), (&t.b, HOST_B)]
        .into_iter()
        .map(|(ns, host)| (host, ns.spawn(&args)))
        .collect();
    for (host, child) in children {
        let out = finish(child, Duration::from_secs(30));
        assert_eq!(
            hops(&out),
            want,
            "{label} traceroute from {host} (`{}`):\n{out}",
            args.join(" ")
        );
    }
}

/// traceroute in UDP, ICMP and TCP modes from two inside hosts; port
/// unreachable on connected UDP sockets of both hosts (sharing one inside
/// port, so on different public ports); fragmentation needed from the
/// router's 1280-byte link, learned by the right host only.
fn icmp_errors_reach_the_right_inside_host(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&[]));
    let _listener = tcp_listen(&t.srv, sa(SRV1, 7000)); // for traceroute -T
    let icmp0 = t.counter("icmp_errors_translated");

    traceroutes(&t, "UDP", &[]);
    traceroutes(&t, "ICMP", &["-I"]);
    traceroutes(&t, "TCP", &["-T", "-p", "7000"]);
    // From the router: time exceeded for hop 2 (per mode and host); from
    // the server: port unreachable ending each UDP traceroute.
    let n = t.counter("icmp_errors_translated") - icmp0;
    assert!(n >= 8, "icmp_errors_translated grew by {n}, want ≥ 8");

    // ECONNREFUSED on connected UDP sockets of both hosts.
    let ca = udp_connected(&t.a, sa(HOST_A, 40010), sa(SRV1, 7999));
    let cb = udp_connected(&t.b, sa(HOST_B, 40010), sa(SRV1, 7999));
    for s in [&ca, &cb] {
        let e =
            udp_error_within(s, b"anyone there?", Duration::from_secs(3)).unwrap_or_else(|| {
                panic!(
                    "no error on {:?} -> 203.0.113.10:7999 (closed)",
                    s.local_addr()
                )
            });
        assert_eq!(
            e.kind(),
            io::ErrorKind::ConnectionRefused,
            "{:?}: {e}",
            s.local_addr()
        );
    }
    let flows = t.flows(&["--proto", "udp"]);
    let pa = find_flow(&flows, sa(HOST_A, 40010), sa(SRV1, 7999)).public;
    let pb = find_flow(&flows, sa(HOST_B, 40010), sa(SRV1, 7999)).public;
    assert_ne!(pa, pb, "two inside hosts on one public endpoint");

    // PMTU: a 1400-byte datagram with DF from A hits the router's 1280-byte
    // link; the translated fragmentation-needed teaches A's kernel the
    // path MTU. B (also sending to the server through the NAT) keeps 1500
    // until it sends a big datagram itself.
    let _sink = udp_bind(&t.srv, sa(SRV1, 7002));
    let ua = udp_connected(&t.a, sa(HOST_A, 40020), sa(SRV1, 7002));
    let ub = udp_connected(&t.b, sa(HOST_B, 40020), sa(SRV1, 7002));
    for s in [&ua, &ub] {
        set_pmtudisc_do(s);
        s.send(b"small").unwrap();
        assert_eq!(
            ip_mtu(s).unwrap(),
            1500,
            "{:?}: initial path MTU",
            s.local_addr()
        );
    }
    learn_pmtu(&ua);
    assert_eq!(ip_mtu(&ua).unwrap(), SRV_LINK_MTU as i32, "A's path MTU");
    assert_eq!(
        ip_mtu(&ub).unwrap(),
        1500,
        "B learned A's fragmentation-needed (it reached the wrong host)"
    );
    learn_pmtu(&ub);
    assert_eq!(ip_mtu(&ub).unwrap(), SRV_LINK_MTU as i32, "B's path MTU");

    t.stop_agent();
}

/// Sends 1400-byte DF datagrams on `s` until the kernel refuses them with
/// EMSGSIZE (it learned a smaller path MTU); bounded.
fn learn_pmtu(s: &std::net::UdpSocket) {
    let big = vec![0x42u8; 1400];
    let deadline = Instant::now() + SOON;
    loop {
        match s.send(&big) {
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => return,
            Err(e) => panic!("{:?}: send: {e}", s.local_addr()),
            Ok(_) => {}
        }
        match recv_within(s, Duration::from_millis(200)) {
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {}
            Err(e) => panic!("{:?}: recv: {e}", s.local_addr()),
            Ok(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "{:?}: no fragmentation-needed reached the socket within {SOON:?}",
            s.local_addr()
        );
    }
}

// ---------------------------------------------------------------------------
// 6. Port exhaustion.

/// `--ports 20000-20001`: two flows take both ports, the third is dropped
/// and its host gets ICMP destination unreachable code 13; once the first
/// two expire a new flow succeeds.
fn port_exhaustion_code_13_and_recovery(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&[
        "--ports",
        "20000-20001",
        "--timeout",
        "udp=2",
    ]));
    let srv = udp_bind(&t.srv, sa(SRV1, 7000));
    // Listening before the flows start: their 2 s timeout must not run out
    // before the third flow is tried.
    let dump = Topology::tcpdump(
        &t.b,
        "eth0",
        1,
        "icmp[icmptype] == 3 and icmp[icmpcode] == 13",
    );

    let f1 = udp_bind(&t.a, sa(HOST_A, 40000));
    let f2 = udp_bind(&t.b, sa(HOST_B, 40001));
    let p1 = udp_deliver(&f1, sa(SRV1, 7000), &srv, b"flow 1");
    let p2 = udp_deliver(&f2, sa(SRV1, 7000), &srv, b"flow 2");
    // 40000 is even and 40001 odd: parity picks the port in the tiny range.
    assert_eq!((p1, p2), (sa(PUB, 20000), sa(PUB, 20001)));
    let exhausted0 = t.counter("drop_ports_exhausted");

    let f3 = udp_connected(&t.b, sa(HOST_C, 40002), sa(SRV1, 7000));
    let e = udp_error_within(&f3, b"flow 3", Duration::from_secs(2))
        .expect("no ICMP error for the third flow (ports exhausted)");
    assert_eq!(e.kind(), io::ErrorKind::HostUnreachable, "third flow: {e}");
    let out = finish(dump, Duration::from_secs(5));
    assert!(
        out.contains("> 10.0.0.4") && out.contains("admin prohibited"),
        "tcpdump at host B should show code 13 to 10.0.0.4:\n{out}"
    );
    assert!(t.counter("drop_ports_exhausted") > exhausted0);
    assert_eq!(t.ports_in_use(PUB), 2);
    let st = t.stats();
    assert_eq!(st["napt"]["mappings"], 2, "{st}");
    assert!(
        t.flows(&["--inside", "10.0.0.4"]).is_empty(),
        "the refused flow has a session"
    );

    // Recovery: the first two go idle and expire, then the third works.
    wait_until(
        Duration::from_secs(8),
        "the two mappings to expire (udp=2)",
        || t.napt_stat("mappings") == 0,
    );
    assert_eq!(t.ports_in_use(PUB), 0);
    let p3 = udp_deliver(&f3, sa(SRV1, 7000), &srv, b"flow 3 again");
    assert!(
        *p3.ip() == PUB && (20000..=20001).contains(&p3.port()),
        "third flow after recovery seen as {p3}"
    );
    let from = udp_deliver(&srv, p3, &f3, b"welcome");
    assert_eq!(from, sa(SRV1, 7000));
    assert_eq!(t.counter("napt_mappings_created"), 3);
    let flows = t.flows(&["--inside", "10.0.0.4"]);
    assert_eq!(flows.len(), 1, "{}", show_flows(&flows));
    assert_eq!(flows[0].public, p3);

    t.stop_agent();
}

// ---------------------------------------------------------------------------
// 7. Port forwards.

/// `forward add` for TCP and UDP: a client beyond the router reaches the
/// inside server 10.0.0.5 through the pool address, the inside server sees
/// the real remote, replies come from the forwarded port; `forward del`
/// ends it (the gateway itself then refuses).
fn port_forwards(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&[]));
    let tcp_srv = tcp_listen(&t.b, sa(HOST_FWD, 80));
    let udp_srv = udp_bind(&t.b, sa(HOST_FWD, 53));
    t.xnat_ok(&["forward", "add", "tcp", "198.51.100.1:8080", "10.0.0.5:80"]);
    t.xnat_ok(&["forward", "add", "udp", "198.51.100.1:5353", "10.0.0.5:53"]);
    let mut list = t.forward_list();
    list.sort();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        list,
        vec![
            s("tcp", "198.51.100.1:8080", "10.0.0.5:80"),
            s("udp", "198.51.100.1:5353", "10.0.0.5:53"),
        ]
    );

    // TCP.
    let c = tcp_connect(&t.srv, sa(SRV3, 0), sa(PUB, 8080), false)
        .unwrap_or_else(|e| panic!("TCP connect to 198.51.100.1:8080: {e}"));
    let client = v4(c.local_addr().unwrap());
    let (x, peer) = accept(&tcp_srv);
    assert_eq!(peer, client, "inside server's view of the remote client");
    tcp_send(&c, &x, b"GET / HTTP/1.0\r\n\r\n");
    tcp_send(&x, &c, b"HTTP/1.0 200 OK\r\n\r\n");
    let flows = t.flows(&["--proto", "tcp", "--inside", "10.0.0.5"]);
    let f = find_flow(&flows, sa(HOST_FWD, 80), client);
    assert!(
        f.public == sa(PUB, 8080) && f.state == "ESTABLISHED" && f.packets_in >= 3,
        "forwarded TCP flow: {}",
        f.raw
    );
    drop((c, x));

    // UDP: the reply's source is the forwarded public port.
    let ucli = udp_bind(&t.srv, sa(SRV3, 6000));
    let seen = udp_deliver(&ucli, sa(PUB, 5353), &udp_srv, b"query");
    assert_eq!(seen, sa(SRV3, 6000), "inside server's view of the remote");
    let back = udp_deliver(&udp_srv, seen, &ucli, b"answer");
    assert_eq!(
        back,
        sa(PUB, 5353),
        "the reply must leave from the forwarded port"
    );
    let flows = t.flows(&["--proto", "udp", "--inside", "10.0.0.5"]);
    let f = find_flow(&flows, sa(HOST_FWD, 53), sa(SRV3, 6000));
    assert_eq!(f.public, sa(PUB, 5353), "{}", f.raw);

    // forward del: nothing reaches the inside server any more.
    t.xnat_ok(&["forward", "del", "tcp", "198.51.100.1:8080"]);
    t.xnat_ok(&["forward", "del", "udp", "198.51.100.1:5353"]);
    assert_eq!(t.forward_list(), vec![]);
    // Its port is in the pool's range: a SYN to it gets no answer now
    // (RFC 5382 REQ-4).
    let unsolicited0 = t.counter("drop_unsolicited_syn");
    let e = tcp_connect(&t.srv, sa(SRV3, 0), sa(PUB, 8080), false)
        .expect_err("TCP connect to 198.51.100.1:8080 succeeded after forward del");
    assert_eq!(e.raw_os_error(), Some(libc::EINPROGRESS), "answered: {e}");
    assert!(t.counter("drop_unsolicited_syn") > unsolicited0);
    assert_no_connection(&tcp_srv, "TCP to 198.51.100.1:8080 after forward del");
    let u = udp_connected(&t.srv, sa(SRV3, 6001), sa(PUB, 5353));
    let e = udp_error_within(&u, b"query", Duration::from_secs(3))
        .expect("no port unreachable for 198.51.100.1:5353 after forward del");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    let got = drain_for(&udp_srv, Duration::from_millis(300));
    assert!(
        got.is_empty(),
        "UDP reached 10.0.0.5:53 after forward del: {got:?}"
    );

    // A dynamic mapping holding the public port (the inside host sent from
    // 5353, which port preservation kept) refuses `forward add`, naming it
    // and the flush that frees it; after that flush the forward goes in.
    let from_5353 = udp_bind(&t.b, sa(HOST_FWD, 5353));
    let outside = udp_bind(&t.srv, sa(SRV3, 6002));
    let seen = udp_deliver(&from_5353, sa(SRV3, 6002), &outside, b"out");
    assert_eq!(seen, sa(PUB, 5353), "port preservation");
    let add = ["forward", "add", "udp", "198.51.100.1:5353", "10.0.0.5:53"];
    let out = t.xnat(&add);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(
                "udp 198.51.100.1:5353 is already used by a live dynamic mapping (to 10.0.0.5:5353); \
                 `xnat flows flush --proto udp --inside 10.0.0.5` removes it"
            ),
        "{}: {err}",
        describe(out.status)
    );
    t.xnat_ok(&["flows", "flush", "--proto", "udp", "--inside", "10.0.0.5"]);
    t.xnat_ok(&add);
    let seen = udp_deliver(&ucli, sa(PUB, 5353), &udp_srv, b"query again");
    assert_eq!(seen, sa(SRV3, 6000), "forwarded again after the flush");

    t.stop_agent();
}

// ---------------------------------------------------------------------------
// 8. Established TCP outlives short timeouts.

/// With `udp=2,tcp-transitory=2`, an established TCP connection idle for
/// 5 s is still mapped (the server can talk first), while a UDP flow
/// opened at the same time has expired.
fn idle_established_tcp_outlives_short_timeouts(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&["--timeout", "udp=2,tcp-transitory=2"]));
    let listener = tcp_listen(&t.srv, sa(SRV1, 7000));
    let c = tcp_connect(&t.a, sa(HOST_A, 40000), sa(SRV1, 7000), false).expect("TCP connect");
    let (x, peer) = accept(&listener);
    assert_eq!(peer, sa(PUB, 40000));
    tcp_send(&c, &x, b"before the idle period");
    tcp_send(&x, &c, b"ack");
    let usrv = udp_bind(&t.srv, sa(SRV1, 7001));
    let u = udp_bind(&t.a, sa(HOST_A, 40001));
    udp_deliver(&u, sa(SRV1, 7001), &usrv, b"udp at the same time");
    let idle_from = Instant::now();
    let created = t.counter("napt_mappings_created");
    assert_eq!(created, 2);
    let tcp = wait_flow_state(&t, "tcp", "ESTABLISHED");
    assert_eq!(tcp.public, sa(PUB, 40000));

    wait_until(Duration::from_secs(8), "the UDP flow to expire", || {
        t.flows(&["--proto", "udp"]).is_empty()
    });
    // The idle period is the point of this test: 5 s in all, more than
    // both short timeouts plus a sweep, bounded.
    let idle = Duration::from_secs(5);
    std::thread::sleep(idle.saturating_sub(idle_from.elapsed()));

    let flows = t.flows(&["--proto", "tcp"]);
    let f = find_flow(&flows, sa(HOST_A, 40000), sa(SRV1, 7000));
    assert!(
        f.state == "ESTABLISHED" && f.idle_s >= 4 && f.age_s >= 5,
        "after 5 s idle: {}",
        f.raw
    );
    // The server talks first: only a live mapping lets that in.
    let filtered0 = t.counter("drop_filtered_inbound");
    let msg = b"after the idle period (from the server)";
    (&x).write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    if let Err(e) = (&c).read_exact(&mut got) {
        panic!(
            "after 5 s idle, data from the server did not reach 10.0.0.2:40000 ({e}); \
             drop_filtered_inbound grew by {} (the address-dependent filter entry \
             of an ESTABLISHED session expired?)\nflows:\n{}",
            t.counter("drop_filtered_inbound") - filtered0,
            show_flows(&t.flows(&[]))
        );
    }
    assert_eq!(&got[..], &msg[..]);
    tcp_send(&c, &x, b"and back");
    assert_eq!(
        t.counter("napt_mappings_created"),
        created,
        "the TCP mapping was recreated"
    );
    assert_eq!(t.napt_stat("mappings"), 1);
    let flows = t.flows(&["--proto", "tcp"]);
    let g = find_flow(&flows, sa(HOST_A, 40000), sa(SRV1, 7000));
    assert!(
        g.idle_s <= 1 && g.packets_in > f.packets_in && g.packets_out > f.packets_out,
        "after the exchange: {}",
        g.raw
    );

    t.stop_agent();
}
