//! End-to-end NAT64 (issue 19) in network namespaces (root): an IPv6-only
//! client reaches an IPv4-only server through `xnat attach EXT
//! --masquerade --inside in0 --nat64` with ping, TCP (large transfers both
//! ways, every byte checked), UDP, traceroute and path MTU discovery — at
//! the gateway (its external link) and beyond it (a router's smaller link).
//!
//! Topology and addresses: see `xnat_tests::nat64_topo`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use xnat_tests::nat64_topo::{
    CLIENT6, GW6, Nat64Topo, POOL, RTR_EXT, RTR_SRV, SRV, tcp_transfer, udp_exchange, v4_of,
    well_known,
};
use xnat_tests::netns::Netns;
use xnat_tests::topology::Ingress;
use xnat_tests::wait::{SOON, wait_until};
use xnat_tests::{both_modes, tc_only};

both_modes!(ping_tcp_udp, "ptu");
both_modes!(traceroute_and_path_mtu, "trc");
tc_only!(outside_the_prefix_and_non_global, "out");
tc_only!(network_specific_prefix, "nsp");

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
    let (c6, srv) = (t.ns("c6"), t.ns("srv"));
    let server = t.synth(SRV);

    let (ok, out) = ping(c6, &["-c", "3", "-i", "0.2", &server.to_string()]);
    assert!(ok, "ping {server} through NAT64:\n{out}");
    assert!(out.contains(&format!("from {server}")), "replies from {server}:\n{out}");

    let down = tcp_transfer(c6, srv, sa4(SRV, 8080), sa6(server, 8080), 8 << 20, false);
    assert_eq!(v4_of(down.server_saw_peer), POOL, "the server sees the pool");
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
    assert_eq!(back, sa6(server, 9000), "the answer comes from the server's IPv6 address");
    // Endpoint-independent mapping and port preservation, as for NAT44.
    assert_eq!(seen.port(), 40_000, "the client's port kept");

    let x = t.agent.xnat();
    for c in ["nat64_out_translated", "nat64_in_translated", "egress_translated_packets"] {
        assert!(x.counter(c) > 1000, "{c} = {}", x.counter(c));
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
    let t = Nat64Topo::start(tag, mode);
    let c6 = t.ns("c6");
    let want = vec![
        GW6.to_string(),
        t.synth(RTR_EXT).to_string(),
        t.synth(SRV).to_string(),
    ];
    assert_eq!(traceroute(c6, t.synth(SRV), &[]), want, "UDP traceroute");
    assert_eq!(traceroute(c6, t.synth(SRV), &["-I"]), want, "ICMP traceroute");

    // At the gateway: 1440 + 48 bytes of IPv6 are 1468 of IPv4 > 1450.
    let rtr = t.synth(RTR_SRV);
    let (ok, out) = ping(c6, &["-c", "1", "-M", "do", "-s", "1440", &rtr.to_string()]);
    assert!(!ok && out.contains("mtu=1450"), "Packet Too Big from the gateway:\n{out}");
    assert_eq!(path_mtu(c6, rtr), Some(1450), "the client learnt the gateway's MTU");

    // Beyond it: 1420 + 48 = 1468 of IPv6, 1448 of IPv4: through the
    // gateway, too big for the router's 1400 link.
    let server = t.synth(SRV);
    let (ok, out) = ping(c6, &["-c", "1", "-M", "do", "-s", "1420", &server.to_string()]);
    assert!(!ok && out.contains("mtu=1420"), "Packet Too Big for the router's link:\n{out}");
    assert!(
        out.contains(&format!("From {}", t.synth(RTR_EXT))),
        "... from the router under the prefix:\n{out}"
    );
    assert_eq!(path_mtu(c6, server), Some(1420), "the client learnt the path MTU");
    let (ok, out) = ping(c6, &["-c", "2", "-M", "do", "-s", "1372", &server.to_string()]);
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
    assert!(!ok, "a non-global address under the well-known prefix:\n{out}");
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
    assert_eq!(server, "2001:db8:46:cb00:71:200::".parse::<Ipv6Addr>().unwrap());
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
