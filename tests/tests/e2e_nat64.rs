//! End-to-end NAT64 (issue 19) in network namespaces (root): an IPv6-only
//! client reaches an IPv4-only server through `xnat attach EXT
//! --masquerade --inside in0 --nat64` with ping, TCP (large transfers both
//! ways, every byte checked), UDP, traceroute and path MTU discovery — at
//! the gateway (its external link) and beyond it (a router's smaller link).
//!
//! Topology and addresses: see `xnat_tests::nat64_topo`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use xnat_tests::fastpath_topo::NoopXdp;
use xnat_tests::frame::{self, Udp};
use xnat_tests::hairpin_topo::RawIp;
use xnat_tests::nat64_topo::{
    CLIENT6, GW6, Nat64Topo, POOL, RTR_EXT, RTR_SRV, RawIp6, SRV, tcp_transfer, udp_exchange,
    udp6_fragments, v4_of, well_known,
};
use xnat_tests::netns::Netns;
use xnat_tests::topology::Ingress;
use xnat_tests::wait::{SOON, wait_until};
use xnat_tests::{both_modes, tc_only};

both_modes!(ping_tcp_udp, "ptu");
both_modes!(traceroute_and_path_mtu, "trc");
tc_only!(outside_the_prefix_and_non_global, "out");
tc_only!(network_specific_prefix, "nsp");
both_modes!(static_nat64_both_ways, "stat");
both_modes!(traceroute_toward_the_ipv6_host, "trin");
both_modes!(udp_fragments_both_ways, "frag");
both_modes!(udp_without_checksum_from_ipv4, "nock");
tc_only!(hairpin_between_ipv6_hosts, "hair");
tc_only!(hairpin_from_an_ipv4_host, "h4");
// Holding out-of-order fragments is TC-only (README "IPv4 fragments").
tc_only!(fragments_out_of_order_inbound, "ooi");
tc_only!(fragments_out_of_order_outbound, "ooo");
both_modes!(path_mtu_toward_the_ipv6_host, "pmtu");
tc_only!(port_cap_per_ipv6_prefix, "cap");
both_modes!(udp_without_df_split_toward_the_ipv6_host, "spl");
both_modes!(fast_path_ping_tcp_udp, "fptu");
both_modes!(fast_path_traceroute_and_path_mtu, "fptr");
both_modes!(fast_path_outbound_in_xdp, "fpx");

/// Sets the int socket option `name` at `level` of `s` to `value`.
fn set_int_opt(
    s: &std::net::UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    what: &str,
) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: setsockopt on our own socket with an int option.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "{what}: {}", std::io::Error::last_os_error());
}

/// The client's socket at `CLIENT6:port` and its public endpoint as the
/// server's socket `s` (at `SRV:server_port`) sees it, from a first
/// datagram (bounded retries: a first one may meet a neighbour being
/// resolved).
fn host_reaches(
    t: &Nat64Topo,
    s: &std::net::UdpSocket,
    port: u16,
    server_port: u16,
) -> (std::net::UdpSocket, SocketAddr) {
    let c = t
        .ns("c6")
        .in_ns(|| std::net::UdpSocket::bind(sa6(CLIENT6, port)))
        .unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..5 {
        c.send_to(b"hi", sa6(t.synth(SRV), server_port)).unwrap();
        if let Some((_, f)) =
            xnat_tests::traffic::recv_within(s, &mut buf, Duration::from_millis(800))
        {
            return (c, f);
        }
    }
    panic!("the host's datagram never reached the server");
}

/// `ping` from `ns`: (succeeded, its output).
fn ping(ns: &Netns, args: &[&str]) -> (bool, String) {
    let mut v = vec!["ping", "-6", "-n", "-W", "3"];
    v.extend_from_slice(args);
    let out = ns.run(Duration::from_secs(30), &v);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The path MTU the client's stack holds for `dst` (`ip -6 route get`).
fn path_mtu(ns: &Netns, dst: Ipv6Addr) -> Option<u32> {
    let out = ns.ip(&["-6", "route", "get", &dst.to_string()]);
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mtu" {
            return words.next().and_then(|m| m.parse().ok());
        }
    }
    None
}

fn sa6(a: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(a), port)
}

fn sa4(a: std::net::Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(a), port)
}

/// Ping, 8 MiB down and up over TCP, UDP both ways; every flow leaves from
/// the pool address and the NAT64 counters move.
fn ping_tcp_udp(tag: &str, mode: Ingress) {
    let t = Nat64Topo::start(tag, mode);
    traffic(&t);
    assert_eq!(t.agent.xnat().counter("nat64_fast_path_in"), 0);
}

/// The topology with `--fast-path`; in XDP mode with the inside link
/// taking XDP redirects (`--xdp-redirect in0`, and an XDP program on the
/// client's end of it, as a veth needs). `inside_xdp`: `--inside-hook xdp`
/// too, EXT taking XDP redirects (an XDP program on the router's end) and
/// the client sending complete checksums (tx checksum offload off, like a
/// host behind a wire: README "Fast path").
fn fast_path_topo(tag: &str, mode: Ingress, inside_xdp: bool) -> (Nat64Topo, Vec<NoopXdp>) {
    let mut noop = Vec::new();
    let mut args = vec!["--fast-path"];
    let mut targets = Vec::new();
    if mode == Ingress::Xdp {
        targets.push("in0");
    }
    if inside_xdp {
        args.extend(["--inside-hook", "xdp"]);
        targets.push("EXT");
    }
    let targets = targets.join(",");
    if !targets.is_empty() {
        args.extend(["--xdp-redirect", &targets]);
    }
    let t = Nat64Topo::with_setup(tag, mode, "64:ff9b::/96", &args, |net| {
        if mode == Ingress::Xdp {
            noop.push(NoopXdp::attach(net.ns("c6"), "eth0"));
        }
        if inside_xdp {
            noop.push(NoopXdp::attach(net.ns("rtr"), "eth0"));
            net.ns("c6").run_ok(&["ethtool", "-K", "eth0", "tx", "off"]);
        }
    });
    (t, noop)
}

/// The same traffic with `--fast-path`: the answers go from the external
/// interface's ingress (TC or XDP) straight to the client, not through
/// the gateway's IPv6 stack (nat64_fast_path_in counts them, and the
/// stack's IPv6 forwarding counter stays well behind).
fn fast_path_ping_tcp_udp(tag: &str, mode: Ingress) {
    let (t, _noop) = fast_path_topo(tag, mode, false);
    let forwarded = || ip6_forwarded(t.ns("gw"));
    let before = forwarded();
    traffic(&t);
    let x = t.agent.xnat();
    let fast = x.counter("nat64_fast_path_in");
    let stack = forwarded() - before;
    assert!(
        fast > 10 && fast > 10 * stack,
        "nat64_fast_path_in = {fast}, the stack forwarded {stack} IPv6 packets"
    );
}

/// With `--inside-hook xdp` too, the client's packets of established
/// flows are translated and sent out in XDP on in0 (nat64_fast_path_out
/// counts them, most of the translations), every byte intact both ways;
/// an IPv4 packet from a stand-in would still be dropped there (packet
/// tests).
fn fast_path_outbound_in_xdp(tag: &str, mode: Ingress) {
    let (t, _noop) = fast_path_topo(tag, mode, true);
    traffic(&t);
    let x = t.agent.xnat();
    let (fast, all) = (
        x.counter("nat64_fast_path_out"),
        x.counter("nat64_out_translated"),
    );
    assert!(
        fast > 1000 && fast * 10 > all * 9,
        "nat64_fast_path_out = {fast} of nat64_out_translated = {all}"
    );
    assert!(x.counter("nat64_fast_path_in") > 10);
}

/// `Ip6OutForwDatagrams` of the namespace: IPv6 packets its stack
/// forwarded.
fn ip6_forwarded(ns: &Netns) -> u64 {
    let out = ns.run(Duration::from_secs(10), &["cat", "/proc/net/snmp6"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Ip6OutForwDatagrams"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Ip6OutForwDatagrams in /proc/net/snmp6")
}

/// Ping, TCP both ways and UDP through `t`, every byte checked.
fn traffic(t: &Nat64Topo) {
    let (c6, srv) = (t.ns("c6"), t.ns("srv"));
    let server = t.synth(SRV);

    let (ok, out) = ping(c6, &["-c", "3", "-i", "0.2", &server.to_string()]);
    assert!(ok, "ping {server} through NAT64:\n{out}");
    assert!(
        out.contains(&format!("from {server}")),
        "replies from {server}:\n{out}"
    );

    let down = tcp_transfer(c6, srv, sa4(SRV, 8080), sa6(server, 8080), 8 << 20, false);
    assert_eq!(
        v4_of(down.server_saw_peer),
        POOL,
        "the server sees the pool"
    );
    let up = tcp_transfer(c6, srv, sa4(SRV, 8081), sa6(server, 8081), 8 << 20, true);
    assert_eq!(v4_of(up.server_saw_peer), POOL, "the server sees the pool");

    let (seen, back) = udp_exchange(
        c6,
        srv,
        sa6(CLIENT6, 40_000),
        sa4(SRV, 9000),
        sa6(server, 9000),
    );
    assert_eq!(v4_of(seen), POOL, "UDP from the pool");
    assert_eq!(
        back,
        sa6(server, 9000),
        "the answer comes from the server's IPv6 address"
    );
    // Endpoint-independent mapping and port preservation, as for NAT44.
    assert_eq!(seen.port(), 40_000, "the client's port kept");

    let x = t.agent.xnat();
    // (Packets, not segments: the veths hand over GSO super-packets.)
    for c in [
        "nat64_out_translated",
        "nat64_in_translated",
        "egress_translated_packets",
    ] {
        assert!(x.counter(c) > 10, "{c} = {}", x.counter(c));
    }
    for c in [
        "nat64_drop_malformed",
        "nat64_drop_unsupported",
        "nat64_drop_no_route",
        "nat64_drop_no_host",
    ] {
        assert_eq!(x.counter(c), 0, "{c}");
    }
}

/// The route the client's traceroute sees, one address per hop.
fn traceroute(ns: &Netns, dst: Ipv6Addr, extra: &[&str]) -> Vec<String> {
    let mut v = vec!["traceroute", "-6", "-n", "-q", "1", "-w", "3", "-m", "5"];
    v.extend_from_slice(extra);
    let d = dst.to_string();
    v.push(&d);
    let out = ns.run(Duration::from_secs(60), &v);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// traceroute (UDP and ICMP) shows the gateway, the IPv4 router and the
/// server under the prefix; Packet Too Big comes from the gateway for its
/// own external link (1450) and, translated from the router's
/// Fragmentation Needed, for the router's link (1400 + 20); the client's
/// stack learns both and a packet of the learnt size gets through.
fn traceroute_and_path_mtu(tag: &str, mode: Ingress) {
    traceroute_and_path_mtu_of(&Nat64Topo::start(tag, mode));
}

/// The same with `--fast-path` (whose packets the gateway must answer
/// take the stack as before), the fast path in use meanwhile.
fn fast_path_traceroute_and_path_mtu(tag: &str, mode: Ingress) {
    let (t, _noop) = fast_path_topo(tag, mode, true);
    traceroute_and_path_mtu_of(&t);
    // The echo replies of the last pings came the fast way.
    assert!(t.agent.xnat().counter("nat64_fast_path_in") >= 2);
}

fn traceroute_and_path_mtu_of(t: &Nat64Topo) {
    let c6 = t.ns("c6");
    let want = vec![
        GW6.to_string(),
        t.synth(RTR_EXT).to_string(),
        t.synth(SRV).to_string(),
    ];
    assert_eq!(traceroute(c6, t.synth(SRV), &[]), want, "UDP traceroute");
    assert_eq!(
        traceroute(c6, t.synth(SRV), &["-I"]),
        want,
        "ICMP traceroute"
    );

    // At the gateway: 1440 + 48 bytes of IPv6 are 1468 of IPv4 > 1450.
    let rtr = t.synth(RTR_SRV);
    let (ok, out) = ping(c6, &["-c", "1", "-M", "do", "-s", "1440", &rtr.to_string()]);
    assert!(
        !ok && out.contains("mtu=1450"),
        "Packet Too Big from the gateway:\n{out}"
    );
    assert_eq!(
        path_mtu(c6, rtr),
        Some(1450),
        "the client learnt the gateway's MTU"
    );

    // Beyond it: 1420 + 48 = 1468 of IPv6, 1448 of IPv4: through the
    // gateway, too big for the router's 1400 link.
    let server = t.synth(SRV);
    let (ok, out) = ping(
        c6,
        &["-c", "1", "-M", "do", "-s", "1420", &server.to_string()],
    );
    assert!(
        !ok && out.contains("mtu=1420"),
        "Packet Too Big for the router's link:\n{out}"
    );
    assert!(
        out.contains(&format!("From {}", t.synth(RTR_EXT))),
        "... from the router under the prefix:\n{out}"
    );
    assert_eq!(
        path_mtu(c6, server),
        Some(1420),
        "the client learnt the path MTU"
    );
    let (ok, out) = ping(
        c6,
        &["-c", "2", "-M", "do", "-s", "1372", &server.to_string()],
    );
    assert!(ok, "a packet of the path MTU gets through:\n{out}");
    assert!(t.agent.xnat().counter("icmp_errors_translated") >= 3);
}

/// IPv6 outside the prefix is routed as usual (the gateway answers its
/// own address); the well-known prefix never carries a non-global IPv4
/// address (RFC 6052 3.1): dropped and counted.
fn outside_the_prefix_and_non_global(tag: &str, mode: Ingress) {
    let t = Nat64Topo::start(tag, mode);
    let c6 = t.ns("c6");
    let (ok, out) = ping(c6, &["-c", "1", &GW6.to_string()]);
    assert!(ok, "plain IPv6 to the gateway:\n{out}");

    let private = well_known("10.1.2.3".parse().unwrap());
    let (ok, out) = ping(c6, &["-c", "2", "-i", "0.2", &private.to_string()]);
    assert!(
        !ok,
        "a non-global address under the well-known prefix:\n{out}"
    );
    let x = t.agent.xnat();
    wait_until(SOON, "nat64_drop_non_global counts the pings", || {
        x.counter("nat64_drop_non_global") >= 2
    });
    assert_eq!(x.counter("nat64_out_translated"), 0);
}

/// A network-specific /48 prefix (the IPv4 address split around the "u"
/// octet, RFC 6052 2.2): ping, TCP and UDP.
fn network_specific_prefix(tag: &str, mode: Ingress) {
    let t = Nat64Topo::with_prefix(tag, mode, "2001:db8:46::/48");
    let (c6, srv) = (t.ns("c6"), t.ns("srv"));
    let server = t.synth(SRV);
    assert_eq!(
        server,
        "2001:db8:46:cb00:71:200::".parse::<Ipv6Addr>().unwrap()
    );
    let (ok, out) = ping(c6, &["-c", "2", "-i", "0.2", &server.to_string()]);
    assert!(ok, "ping {server}:\n{out}");
    tcp_transfer(c6, srv, sa4(SRV, 8080), sa6(server, 8080), 1 << 20, false);
    let (_, back) = udp_exchange(
        c6,
        srv,
        sa6(CLIENT6, 40_001),
        sa4(SRV, 9000),
        sa6(server, 9000),
    );
    assert_eq!(back, sa6(server, 9000));
}

/// traceroute from the IPv4 side to a statically mapped IPv6 host (UDP
/// and ICMP): the router, then the gateway — a probe whose TTL runs out
/// there is answered with ICMP Time Exceeded by xnat, from the public
/// address it was sent to (RFC 7915 section 4) — then the host.
fn traceroute_toward_the_ipv6_host(tag: &str, mode: Ingress) {
    let public: std::net::Ipv4Addr = "198.51.100.10".parse().unwrap();
    let map = format!("{CLIENT6}={public}");
    // XDP answers by XDP_TX: the router's end of the link runs XDP too
    // (README, "Fast path": --xdp-redirect).
    let mut args = vec!["--nat64-map", map.as_str()];
    let mut noop = None;
    if mode == Ingress::Xdp {
        args.extend(["--xdp-redirect", "EXT"]);
    }
    let t = Nat64Topo::with_setup(tag, mode, "64:ff9b::/96", &args, |net| {
        if mode == Ingress::Xdp {
            noop = Some(NoopXdp::attach(net.ns("rtr"), "eth0"));
        }
    });
    let _keep_attached = noop;
    let srv = t.ns("srv");
    let want = vec![RTR_SRV.to_string(), public.to_string(), public.to_string()];
    for extra in [&[][..], &["-I"][..]] {
        let mut v = vec!["traceroute", "-n", "-q", "1", "-w", "3", "-m", "5"];
        v.extend_from_slice(extra);
        let d = public.to_string();
        v.push(&d);
        let out = srv.run(Duration::from_secs(60), &v);
        let hops: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect();
        assert_eq!(hops, want, "traceroute {extra:?}");
    }
    assert!(t.agent.xnat().counter("nat64_time_exceeded_sent") >= 2);
}

/// Static NAT64 (`--nat64-map IPV6=IPV4`): the IPv4 server connects to
/// the public address and reaches the IPv6 host, which sees it under the
/// prefix; the host's own flows leave from that address.
fn static_nat64_both_ways(tag: &str, mode: Ingress) {
    let public: std::net::Ipv4Addr = "198.51.100.10".parse().unwrap();
    let map = format!("{CLIENT6}={public}");
    let t = Nat64Topo::with_args(tag, mode, "64:ff9b::/96", &["--nat64-map", &map]);
    let (c6, srv) = (t.ns("c6"), t.ns("srv"));
    let inbound = tcp_transfer(
        srv,
        c6,
        sa6(Ipv6Addr::UNSPECIFIED, 8443),
        sa4(public, 8443),
        1 << 20,
        true,
    );
    assert_eq!(
        inbound.server_saw_peer.ip(),
        IpAddr::V6(t.synth(SRV)),
        "the IPv6 host sees the IPv4 client under the prefix"
    );
    let (seen, _) = udp_exchange(
        c6,
        srv,
        sa6(CLIENT6, 40_002),
        sa4(SRV, 9000),
        sa6(t.synth(SRV), 9000),
    );
    assert_eq!(
        v4_of(seen),
        public,
        "the host's own flows leave from its address"
    );
}

/// A 4000-byte UDP datagram each way: the client's IPv6 fragments become
/// IPv4 fragments (RFC 7915 5.1.1), the server's IPv4 fragments (1400-byte
/// link) IPv6 fragments with a fragment header (4.1); both arrive whole.
fn udp_fragments_both_ways(tag: &str, mode: Ingress) {
    let t = Nat64Topo::start(tag, mode);
    let (c6, srv) = (t.ns("c6"), t.ns("srv"));
    let server = t.synth(SRV);
    let s = srv
        .in_ns(|| std::net::UdpSocket::bind(sa4(SRV, 9200)))
        .unwrap();
    let c = c6
        .in_ns(|| std::net::UdpSocket::bind(sa6(CLIENT6, 40_003)))
        .unwrap();
    let data = xnat_tests::traffic::payload(4000, 7);
    let mut buf = vec![0u8; 65536];
    let mut done = false;
    // Bounded retries: a first datagram may meet a neighbour being resolved.
    for _ in 0..5 {
        c.send_to(&data, sa6(server, 9200)).unwrap();
        let Some((n, from)) =
            xnat_tests::traffic::recv_within(&s, &mut buf, Duration::from_millis(800))
        else {
            continue;
        };
        assert_eq!(
            &buf[..n],
            &data[..],
            "the client's datagram arrived changed"
        );
        assert_eq!(v4_of(from), POOL);
        let back: Vec<u8> = data.iter().rev().copied().collect();
        s.send_to(&back, from).unwrap();
        let Some((n, from)) =
            xnat_tests::traffic::recv_within(&c, &mut buf, Duration::from_millis(800))
        else {
            continue;
        };
        assert_eq!(
            &buf[..n],
            &back[..],
            "the server's datagram arrived changed"
        );
        assert_eq!(from, sa6(server, 9200));
        done = true;
        break;
    }
    assert!(done, "no 4000-byte exchange in 5 attempts");
    let x = t.agent.xnat();
    assert!(
        x.counter("fragments_translated") >= 4,
        "later fragments through NAT44"
    );
}

/// IPv4 UDP may go without a checksum; IPv6 UDP may not: the server's
/// datagrams sent with none (SO_NO_CHECK) reach the IPv6 host with one
/// computed (RFC 6146 3.4), of each length's parity.
fn udp_without_checksum_from_ipv4(tag: &str, mode: Ingress) {
    let t = Nat64Topo::start(tag, mode);
    let (c6, srv) = (t.ns("c6"), t.ns("srv"));
    let server = t.synth(SRV);
    let s = srv
        .in_ns(|| std::net::UdpSocket::bind(sa4(SRV, 9300)))
        .unwrap();
    set_int_opt(&s, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1, "SO_NO_CHECK");
    let c = c6
        .in_ns(|| std::net::UdpSocket::bind(sa6(CLIENT6, 40_004)))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    for len in [1usize, 2, 3, 101, 1000] {
        let data = xnat_tests::traffic::payload(len, len as u8);
        let mut ok = false;
        for _ in 0..5 {
            c.send_to(b"ask", sa6(server, 9300)).unwrap();
            let Some((_, from)) =
                xnat_tests::traffic::recv_within(&s, &mut buf, Duration::from_millis(800))
            else {
                continue;
            };
            s.send_to(&data, from).unwrap();
            if let Some((n, _)) =
                xnat_tests::traffic::recv_within(&c, &mut buf, Duration::from_millis(800))
            {
                assert_eq!(&buf[..n], &data[..], "{len}-byte datagram changed");
                ok = true;
                break;
            }
        }
        assert!(ok, "no {len}-byte datagram without checksum arrived");
    }
    assert_eq!(t.agent.xnat().counter("nat64_drop_malformed"), 0);
}

/// Two IPv6 hosts through the pool (RFC 6146 3.8, RFC 4787 REQ-9): B's
/// binding made by a datagram to the server, A sends to B's public
/// endpoint under the prefix; B sees A's public endpoint under the prefix,
/// and the answer goes back the same way.
fn hairpin_between_ipv6_hosts(tag: &str, mode: Ingress) {
    let t = Nat64Topo::with_args(
        tag,
        mode,
        "64:ff9b::/96",
        &["--filtering", "endpoint-independent"],
    );
    let (c6, srv) = (t.ns("c6"), t.ns("srv"));
    let host_b: Ipv6Addr = "2001:db8:64::3".parse().unwrap();
    c6.ip(&["addr", "add", "2001:db8:64::3/64", "dev", "eth0", "nodad"]);
    let (b_public, _) = udp_exchange(
        c6,
        srv,
        sa6(host_b, 9400),
        sa4(SRV, 9000),
        sa6(t.synth(SRV), 9000),
    );
    assert_eq!(b_public, sa4(POOL, 9400), "B's binding, its port kept");

    let b = c6
        .in_ns(|| std::net::UdpSocket::bind(sa6(host_b, 9400)))
        .unwrap();
    let a = c6
        .in_ns(|| std::net::UdpSocket::bind(sa6(CLIENT6, 9401)))
        .unwrap();
    let b_via_pool = sa6(t.synth(POOL), 9400);
    let mut buf = [0u8; 64];
    let mut seen = None;
    for _ in 0..5 {
        a.send_to(b"to B", b_via_pool).unwrap();
        if let Some((n, from)) =
            xnat_tests::traffic::recv_within(&b, &mut buf, Duration::from_millis(800))
        {
            assert_eq!(&buf[..n], b"to B");
            seen = Some(from);
            break;
        }
    }
    let from = seen.expect("A's datagram never reached B through the pool");
    assert_eq!(from, sa6(t.synth(POOL), 9401), "B sees A's public endpoint");
    b.send_to(b"to A", from).unwrap();
    let (n, back) = xnat_tests::traffic::recv_within(&a, &mut buf, Duration::from_secs(3))
        .expect("B's answer never reached A");
    assert_eq!((&buf[..n], back), (&b"to A"[..], b_via_pool));
    assert!(t.agent.xnat().counter("hairpin_translated") >= 2);
}

/// Orders the fragments of a three-fragment datagram are sent in: the
/// first fragment last, in the middle, and first.
const ORDERS: [[usize; 3]; 3] = [[2, 1, 0], [1, 0, 2], [0, 2, 1]];

/// The server sends the fragments of a datagram for the IPv6 host's
/// binding out of order (RFC 4787 REQ-14): later fragments that come
/// before the first are held, then sent on through NAT64 with it; the
/// host receives the datagram whole.
fn fragments_out_of_order_inbound(tag: &str, mode: Ingress) {
    let t = Nat64Topo::start(tag, mode);
    let (c6, srv) = (t.ns("c6"), t.ns("srv"));
    let (public, _) = udp_exchange(
        c6,
        srv,
        sa6(CLIENT6, 9600),
        sa4(SRV, 9000),
        sa6(t.synth(SRV), 9000),
    );
    let host = c6
        .in_ns(|| std::net::UdpSocket::bind(sa6(CLIENT6, 9600)))
        .unwrap();
    let raw = RawIp::open(srv);
    let mut buf = vec![0u8; 8192];
    for (i, order) in ORDERS.iter().enumerate() {
        let data = xnat_tests::traffic::payload(3000, 0x60 + i as u8);
        let p = frame::Packet::udp(SRV, v4_of(public), Udp::new(9000, public.port(), &data))
            .with_id(0x6401 + i as u16);
        let total = p.l4_bytes().len();
        let frags: Vec<Vec<u8>> = (0..total)
            .step_by(1280)
            .map(|off| {
                let len = 1280.min(total - off);
                p.fragment(off, len, off + len < total).ip_bytes()
            })
            .collect();
        assert_eq!(frags.len(), 3);
        let held = t.agent.xnat().counter("fragments_held");
        for &k in order {
            raw.send(&frags[k])
                .unwrap_or_else(|e| panic!("raw send of fragment {k}: {e}"));
        }
        let (n, from) = xnat_tests::traffic::recv_within(&host, &mut buf, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("order {order:?}: the datagram never reached the host"));
        assert_eq!(
            &buf[..n],
            &data[..],
            "order {order:?}: the datagram changed"
        );
        assert_eq!(from, sa6(t.synth(SRV), 9000), "order {order:?}");
        if order[0] != 0 {
            assert!(
                t.agent.xnat().counter("fragments_held") > held,
                "order {order:?}: nothing was held"
            );
        }
    }
}

/// The IPv6 host sends the fragments of a datagram out of order: the
/// later fragments that come before the first are held, and sent on with
/// it (by the FIB, from the binding the first fragment made); the server
/// receives the datagram whole.
fn fragments_out_of_order_outbound(tag: &str, mode: Ingress) {
    let t = Nat64Topo::start(tag, mode);
    let (c6, srv) = (t.ns("c6"), t.ns("srv"));
    // The binding and the neighbours first, so that each datagram below
    // has one chance.
    let (public, _) = udp_exchange(
        c6,
        srv,
        sa6(CLIENT6, 9601),
        sa4(SRV, 9001),
        sa6(t.synth(SRV), 9001),
    );
    let server = srv
        .in_ns(|| std::net::UdpSocket::bind(sa4(SRV, 9001)))
        .unwrap();
    let raw = RawIp6::open(c6);
    let src = std::net::SocketAddrV6::new(CLIENT6, 9601, 0, 0);
    let dst = std::net::SocketAddrV6::new(t.synth(SRV), 9001, 0, 0);
    let mut buf = vec![0u8; 8192];
    for (i, order) in ORDERS.iter().enumerate() {
        let data = xnat_tests::traffic::payload(3000, 0x70 + i as u8);
        let frags = udp6_fragments(src, dst, &data, 0x64_0001 + i as u32, 1232);
        assert_eq!(frags.len(), 3);
        let released = t.agent.xnat().counter("fragments_released");
        for &k in order {
            raw.send(&frags[k])
                .unwrap_or_else(|e| panic!("raw send of fragment {k}: {e}"));
        }
        let (n, from) = xnat_tests::traffic::recv_within(&server, &mut buf, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("order {order:?}: the datagram never reached the server"));
        assert_eq!(
            &buf[..n],
            &data[..],
            "order {order:?}: the datagram changed"
        );
        assert_eq!(from, public, "order {order:?}: from the host's binding");
        if order[0] != 0 {
            assert!(
                t.agent.xnat().counter("fragments_released") > released,
                "order {order:?}: nothing was held and released"
            );
        }
    }
}

/// A dual-stack inside link: an IPv4 host sends to an IPv6 host's public
/// endpoint (RFC 6146 3.8 from the IPv4 side). The IPv6 host sees the
/// IPv4 host's public endpoint under the prefix, and its answer comes back
/// through the pool to the IPv4 host — never out of the external
/// interface (before, it left there with a stand-in for its destination).
fn hairpin_from_an_ipv4_host(tag: &str, mode: Ingress) {
    let t = Nat64Topo::with_setup(
        tag,
        mode,
        "64:ff9b::/96",
        &["--filtering", "endpoint-independent"],
        |net| {
            net.ns("gw")
                .ip(&["addr", "add", "10.64.0.1/24", "dev", "in0"]);
            let c6 = net.ns("c6");
            c6.ip(&["addr", "add", "10.64.0.2/24", "dev", "eth0"]);
            c6.ip(&["route", "add", "default", "via", "10.64.0.1"]);
        },
    );
    let (c6, srv) = (t.ns("c6"), t.ns("srv"));
    let (b_public, _) = udp_exchange(
        c6,
        srv,
        sa6(CLIENT6, 9500),
        sa4(SRV, 9000),
        sa6(t.synth(SRV), 9000),
    );
    assert_eq!(b_public, sa4(POOL, 9500), "the IPv6 host's binding");
    let host4 = std::net::Ipv4Addr::new(10, 64, 0, 2);

    let b = c6
        .in_ns(|| std::net::UdpSocket::bind(sa6(CLIENT6, 9500)))
        .unwrap();
    let a = c6
        .in_ns(|| std::net::UdpSocket::bind(sa4(host4, 9501)))
        .unwrap();
    let mut buf = [0u8; 64];
    let mut seen = None;
    for _ in 0..5 {
        a.send_to(b"to B", b_public).unwrap();
        if let Some((n, from)) =
            xnat_tests::traffic::recv_within(&b, &mut buf, Duration::from_millis(800))
        {
            assert_eq!(&buf[..n], b"to B");
            seen = Some(from);
            break;
        }
    }
    let from = seen.expect("the IPv4 host's datagram never reached the IPv6 host");
    assert_eq!(
        from,
        sa6(t.synth(POOL), 9501),
        "the IPv6 host sees the IPv4 host's public endpoint"
    );
    b.send_to(b"to A", from).unwrap();
    let (n, back) = xnat_tests::traffic::recv_within(&a, &mut buf, Duration::from_secs(3))
        .expect("the answer never reached the IPv4 host");
    assert_eq!((&buf[..n], back), (&b"to A"[..], b_public));
    assert!(t.agent.xnat().counter("hairpin_translated") >= 2);
}

/// The other way: the inside link's MTU is 1280 (read at attach); an IPv4
/// datagram with DF that would not fit it once
/// translated is answered with Fragmentation Needed for 1260, so the
/// server's stack learns the path MTU, and a datagram of that size
/// arrives.
fn path_mtu_toward_the_ipv6_host(tag: &str, mode: Ingress) {
    // In XDP the answer goes back with XDP_TX: on a veth only if the peer
    // runs XDP too (README, "Fast path": --xdp-redirect).
    let mut noop = None;
    let xdp_tx: &[&str] = match mode {
        Ingress::Xdp => &["--xdp-redirect", "EXT"],
        Ingress::Tc => &[],
    };
    let t = Nat64Topo::with_setup(tag, mode, "64:ff9b::/96", xdp_tx, |net| {
        net.ns("c6").ip(&["link", "set", "eth0", "mtu", "1280"]);
        net.ns("gw").ip(&["link", "set", "in0", "mtu", "1280"]);
        if mode == Ingress::Xdp {
            noop = Some(NoopXdp::attach(net.ns("rtr"), "eth0"));
        }
    });
    let _keep_attached = noop;
    let srv = t.ns("srv");

    let s = srv
        .in_ns(|| std::net::UdpSocket::bind(sa4(SRV, 9500)))
        .unwrap();
    set_int_opt(
        &s,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DO,
        "IP_MTU_DISCOVER",
    );
    let (c, host) = host_reaches(&t, &s, 40_005, 9500);
    let mut buf = vec![0u8; 4096];
    // Too big for the inside link once 20 bytes longer: the answer makes
    // the server's next send of that size fail with EMSGSIZE.
    // (1328 bytes of IPv4: fits the server's 1400 link, not 1280 once IPv6.)
    let big = vec![7u8; 1300];
    let mut learnt = false;
    for _ in 0..20 {
        match s.send_to(&big, host) {
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                learnt = true;
                break;
            }
            Err(e) => panic!("send: {e}"),
            Ok(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    assert!(learnt, "the server never learnt the path MTU");
    assert!(t.agent.xnat().counter("nat64_frag_needed_sent") >= 1);
    let fits = vec![9u8; 1260 - 28];
    s.send_to(&fits, host).unwrap();
    let (n, _) = xnat_tests::traffic::recv_within(&c, &mut buf, Duration::from_secs(3))
        .expect("a datagram of the learnt size never arrived");
    assert_eq!(&buf[..n], &fits[..]);
}

/// `--max-ports-per-host 2` with the default host prefix (/64): two
/// addresses of the client's /64 share the cap, so the third mapping
/// across both is refused (`drop_host_port_cap`) and never reaches the
/// server, while a host of another /64 still gets ports; `xnat status`
/// and the ready line say the cap's unit.
fn port_cap_per_ipv6_prefix(tag: &str, mode: Ingress) {
    let t = Nat64Topo::with_args(tag, mode, "64:ff9b::/96", &["--max-ports-per-host", "2"]);
    let (c6, gw, srv) = (t.ns("c6"), t.ns("gw"), t.ns("srv"));
    let same_64: Ipv6Addr = "2001:db8:64::3".parse().unwrap();
    let other_64: Ipv6Addr = "2001:db8:65::2".parse().unwrap();
    c6.ip(&["addr", "add", "2001:db8:64::3/64", "dev", "eth0", "nodad"]);
    c6.ip(&["addr", "add", "2001:db8:65::2/64", "dev", "eth0", "nodad"]);
    gw.ip(&["addr", "add", "2001:db8:65::1/64", "dev", "in0", "nodad"]);
    assert!(
        t.agent.ready_line().contains("port cap per IPv6 /64"),
        "ready line: {}",
        t.agent.ready_line()
    );
    let status = t.agent.xnat().run_ok(&["status"]);
    assert!(status.contains("(host prefix /64)"), "status: {status}");

    // Two mappings from two addresses of one /64: the cap's two ports.
    for (i, host) in [CLIENT6, same_64].into_iter().enumerate() {
        let port = 9600 + i as u16;
        udp_exchange(
            c6,
            srv,
            sa6(host, port),
            sa4(SRV, 9700 + i as u16),
            sa6(t.synth(SRV), 9700 + i as u16),
        );
    }
    assert_eq!(t.agent.xnat().counter("drop_host_port_cap"), 0);

    // A third from the first address, on a new port: refused.
    let listen = srv
        .in_ns(|| std::net::UdpSocket::bind(sa4(SRV, 9710)))
        .unwrap();
    let third = c6
        .in_ns(|| std::net::UdpSocket::bind(sa6(CLIENT6, 9610)))
        .unwrap();
    third
        .send_to(b"over the cap", sa6(t.synth(SRV), 9710))
        .unwrap();
    wait_until(SOON, "the third mapping of the /64 refused", || {
        t.agent.xnat().counter("drop_host_port_cap") >= 1
    });
    let mut buf = [0u8; 64];
    assert!(
        xnat_tests::traffic::recv_within(&listen, &mut buf, Duration::from_millis(300)).is_none(),
        "a datagram over the /64's cap reached the server"
    );
    let flows = t.agent.xnat().run_ok(&["flows", "--proto", "udp"]);
    assert!(!flows.contains(":9610"), "a binding over the cap: {flows}");

    // Another /64 has a cap of its own.
    let (seen, _) = udp_exchange(
        c6,
        srv,
        sa6(other_64, 9620),
        sa4(SRV, 9720),
        sa6(t.synth(SRV), 9720),
    );
    assert_eq!(v4_of(seen), POOL, "the other /64's mapping");
    assert_eq!(t.agent.xnat().counter("drop_host_port_cap"), 1);
}

/// RFC 7915 4.1: the inside link's MTU is 1280; the server sends UDP
/// datagrams without DF (IP_PMTUDISC_DONT) too big for it once
/// translated — 3000 bytes (IPv4 fragments from the server's 1400-byte
/// link, each too big as well), 1300 without checksum (one IPv4 packet)
/// — and, as a real tool, socat (`mtudiscover=0`) 2000 bytes. With TC
/// ingress xnat splits them into IPv6 fragments that fit, and the host's
/// stack reassembles each datagram with every byte intact; with TC a
/// 1300-byte one with its checksum left to the veth (CHECKSUM_PARTIAL) is
/// dropped and counted. With XDP ingress (which sends one packet at most) the XDP
/// program hands them to a TC program behind it, which splits them the
/// same way (README, "NAT64").
fn udp_without_df_split_toward_the_ipv6_host(tag: &str, mode: Ingress) {
    let t = Nat64Topo::with_setup(tag, mode, "64:ff9b::/96", &[], |net| {
        net.ns("c6").ip(&["link", "set", "eth0", "mtu", "1280"]);
        net.ns("gw").ip(&["link", "set", "in0", "mtu", "1280"]);
    });
    let srv = t.ns("srv");
    let s = srv
        .in_ns(|| std::net::UdpSocket::bind(sa4(SRV, 9600)))
        .unwrap();
    set_int_opt(
        &s,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DONT,
        "IP_MTU_DISCOVER",
    );
    let (c, host) = host_reaches(&t, &s, 40_006, 9600);
    let mut buf = vec![0u8; 65536];
    // XDP hands them to the TC program behind it, which splits them.
    let split = true;
    let x = t.agent.xnat();
    // 1300 bytes leave the server in one packet whose checksum the veth is
    // to complete (CHECKSUM_PARTIAL, kept across the router's veths): not
    // split (README, "NAT64"), dropped and counted.
    // (Native XDP on a veth completes the checksum of the skb it makes a
    // frame of: then it is split like any other.)
    let data = xnat_tests::traffic::payload(1300, 13);
    s.send_to(&data, host).unwrap();
    let got = xnat_tests::traffic::recv_within(&c, &mut buf, Duration::from_secs(2));
    let partial_dropped = u64::from(mode == Ingress::Tc);
    if partial_dropped == 1 {
        assert!(got.is_none(), "a CHECKSUM_PARTIAL datagram arrived");
    } else {
        let (n, _) = got.expect("XDP: the 1300-byte datagram never arrived");
        assert_eq!(&buf[..n], &data[..], "XDP: the 1300-byte datagram changed");
    }
    assert_eq!(x.counter("nat64_drop_too_big"), partial_dropped);
    // 3000 bytes in IPv4 fragments (checksum computed by the server's
    // stack), then 1300 without checksum (SO_NO_CHECK: xnat computes it
    // over the whole datagram before splitting it).
    let mut sends = vec![(xnat_tests::traffic::payload(3000, 30), false)];
    sends.push((xnat_tests::traffic::payload(1300, 31), true));
    for (data, no_check) in sends {
        if no_check {
            set_int_opt(&s, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1, "SO_NO_CHECK");
        }
        let len = data.len();
        s.send_to(&data, host).unwrap();
        let got = xnat_tests::traffic::recv_within(&c, &mut buf, Duration::from_secs(2));
        if split {
            let (n, _) = got.unwrap_or_else(|| panic!("the {len}-byte datagram never arrived"));
            assert_eq!(
                &buf[..n],
                &data[..],
                "the {len}-byte datagram arrived changed"
            );
        } else {
            assert!(got.is_none(), "XDP: the {len}-byte datagram arrived");
        }
    }
    // socat, an ordinary tool, from the same port (the socket closed).
    drop(s);
    let file = std::env::temp_dir().join(format!("xnat-split-{}-{tag}", std::process::id()));
    let data = xnat_tests::traffic::payload(2000, 0x51);
    std::fs::write(&file, &data).unwrap();
    let out = srv.run(
        Duration::from_secs(10),
        &[
            "socat",
            "-u",
            &format!("OPEN:{}", file.display()),
            &format!("UDP4-SENDTO:{host},bind={SRV}:9600,mtudiscover=0"),
        ],
    );
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "socat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = xnat_tests::traffic::recv_within(&c, &mut buf, Duration::from_secs(2));
    if split {
        let (n, _) = got.expect("socat's 2000-byte datagram never arrived");
        assert_eq!(&buf[..n], &data[..], "socat's datagram arrived changed");
        // 3000 bytes: two fragments too big; 1300; socat's first fragment.
        assert!(x.counter("nat64_fragmented") >= 4);
        assert!(x.counter("nat64_fragments_sent") >= 8);
        assert_eq!(x.counter("nat64_drop_too_big"), partial_dropped);
    } else {
        assert!(got.is_none(), "XDP: socat's datagram arrived");
    }
}
