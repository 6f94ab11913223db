//! Abuse: unsolicited inbound scans of the whole public port range
//! (issue 6), in network namespaces (root), in each filtering mode.
//!
//! Host A holds one UDP mapping (10.0.0.2:40000, to 203.0.113.10:7000) and
//! one TCP connection (10.0.0.2:40001 to 203.0.113.10:7001). Two scanners
//! beyond the router — one on the address A talks to (203.0.113.10), one
//! on another (203.0.113.12) — send a UDP datagram and a TCP SYN (raw
//! socket) to every port 1..=65535 of the pool address. What reaches the
//! inside is counted at the inside hosts, on their interfaces, by
//! nftables.

use std::net::Ipv4Addr;
use std::time::Duration;

use xnat_tests::fault_topo::FaultTopo;
use xnat_tests::frame::{Packet, Tcp};
use xnat_tests::hairpin_topo::RawIp;
use xnat_tests::napt_topo::{
    HOST_A, POOL, SRV1, SRV3, drain_for, sa, tcp_connect, tcp_listen, udp_bind, udp_deliver, v4,
};
use xnat_tests::netns::Netns;
use xnat_tests::nft::IngressCounter;
use xnat_tests::topology::Ingress;
use xnat_tests::traffic::accept_within;
use xnat_tests::wait::wait_until;

const POOL1: &str = "198.51.100.1";
/// Ports scanned per batch before waiting for the gateway to take them
/// (keeps the receiving veth's backlog, 1000 packets, from overflowing:
/// a drop there would hide an admitted probe).
const BATCH: u16 = 128;

macro_rules! scan_test {
    ($name:ident, $tag:literal, $mode:literal, $admit:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn tc() {
                scan($tag, Ingress::Tc, $mode, $admit);
            }

            #[test]
            fn xdp() {
                scan($tag, Ingress::Xdp, $mode, $admit);
            }
        }
    };
}

// Which scanner reaches a mapped port: [same address, other address].
scan_test!(
    scan_endpoint_independent,
    "seif",
    "endpoint-independent",
    [true, true]
);
scan_test!(scan_address, "sadf", "address", [true, false]);
scan_test!(
    scan_address_and_port,
    "sapd",
    "address-and-port",
    [false, false]
);

/// Packets `dev` in `ns` has received (/proc/net/dev of the namespace).
fn rx_packets(ns: &Netns, dev: &str) -> u64 {
    let text = ns
        .in_ns(|| std::fs::read_to_string("/proc/thread-self/net/dev"))
        .expect("reading /proc/net/dev");
    let prefix = format!("{dev}:");
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(&prefix))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rx_packets of {dev} in:\n{text}"))
}

/// Promise: of a scan of every port, from every scanner, exactly the
/// probes to a mapped port that the filtering mode admits reach the inside
/// (one UDP datagram and one SYN per admitted scanner), counted at the
/// inside hosts; the refused probes to mapped ports are counted as
/// filtered; nothing else gets in.
fn scan(tag: &str, mode: Ingress, filtering: &str, admit: [bool; 2]) {
    let mut f = FaultTopo::new(tag, mode);
    f.start(&[
        "--pool",
        POOL1,
        "--internal",
        "10.0.0.0/8",
        "--filtering",
        filtering,
    ]);
    let pub_ip = POOL[0];

    // The mappings the scan may find.
    let peer = udp_bind(&f.t.srv, sa(SRV1, 7000));
    let inside = udp_bind(&f.t.a, sa(HOST_A, 40000));
    let udp_public = udp_deliver(&inside, sa(SRV1, 7000), &peer, b"open");
    udp_deliver(&peer, udp_public, &inside, b"reply");
    let listener = tcp_listen(&f.t.srv, sa(SRV1, 7001));
    let conn = tcp_connect(&f.t.a, sa(HOST_A, 40001), sa(SRV1, 7001), false).expect("TCP connect");
    let (_server_side, seen) = accept_within(&listener, Duration::from_secs(5));
    let tcp_public = v4(seen);
    assert_eq!(*tcp_public.ip(), pub_ip);

    let count_a = IngressCounter::new(&f.t.a, "scan", "eth0", &["ip", "saddr", "203.0.113.0/24"]);
    let count_b = IngressCounter::new(&f.t.b, "scan", "eth0", &["ip", "saddr", "203.0.113.0/24"]);
    let filtered0 = f.t.counter("drop_filtered_inbound");

    let scanners = [SRV1, SRV3];
    let udp: Vec<_> = scanners
        .iter()
        .map(|s| udp_bind(&f.t.srv, sa(*s, 9999)))
        .collect();
    let raw = RawIp::open(&f.t.srv);
    let ext = f.t.ext.clone();
    let mut sent = 0u64;
    let rx0 = rx_packets(&f.t.nat, &ext);
    let started = std::time::Instant::now();
    for first in (1..=65535u32).step_by(BATCH as usize) {
        for port in first..(first + BATCH as u32).min(65536) {
            let port = port as u16;
            for (i, s) in scanners.iter().enumerate() {
                udp[i].send_to(b"scan", sa(pub_ip, port)).unwrap();
                let syn = Packet::tcp(*s, pub_ip, Tcp::syn(9998, port)).ip_bytes();
                raw.send(&syn).unwrap();
                sent += 2;
            }
        }
        wait_until(
            Duration::from_secs(10),
            "the gateway to receive the batch",
            || rx_packets(&f.t.nat, &ext) >= rx0 + sent,
        );
    }
    eprintln!(
        "{filtering}: scanned 2 x 65535 ports x 2 protocols in {:?}",
        started.elapsed()
    );

    let admitted: Vec<Ipv4Addr> = scanners
        .iter()
        .zip(admit)
        .filter(|(_, a)| *a)
        .map(|(s, _)| *s)
        .collect();
    let want = 2 * admitted.len() as u64;
    let refused = 4 - want;
    wait_until(
        Duration::from_secs(10),
        "the refused probes to mapped ports to be counted",
        || f.t.counter("drop_filtered_inbound") >= filtered0 + refused,
    );
    // Admitted probes were routed on by the time the batch was taken in;
    // wait for them at the inside hosts, then check nothing more came.
    wait_until(
        Duration::from_secs(10),
        "the admitted probes to arrive",
        || count_a.packets() + count_b.packets() >= want,
    );
    let got: Vec<_> = drain_for(&inside, Duration::from_millis(200))
        .into_iter()
        .map(|(d, from)| (d, v4(from)))
        .collect();
    let mut sources: Vec<Ipv4Addr> = got.iter().map(|(_, from)| *from.ip()).collect();
    sources.sort();
    assert_eq!(
        sources, admitted,
        "--filtering {filtering}: UDP probes that reached 10.0.0.2:40000: {got:?}"
    );
    assert_eq!(
        count_b.packets(),
        0,
        "--filtering {filtering}: probes reached host B"
    );
    assert_eq!(
        count_a.packets(),
        want,
        "--filtering {filtering}: packets from the scanners at host A (want one datagram and one SYN per admitted scanner)"
    );
    assert_eq!(
        f.t.counter("drop_filtered_inbound") - filtered0,
        refused,
        "--filtering {filtering}: drop_filtered_inbound"
    );
    drop(conn);
    f.stop();
}
