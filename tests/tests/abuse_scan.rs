//! Abuse: unsolicited inbound scans of the whole public port range
//! (issue 6), in network namespaces (root), in each filtering mode.
//!
//! Host A holds one UDP mapping (10.0.0.2:40000, to 203.0.113.10:7000) and
//! one TCP connection (10.0.0.2:40001 to 203.0.113.10:7001). Two scanners
//! beyond the router — one on the address A talks to (203.0.113.10), one
//! on another (203.0.113.12) — send a UDP datagram and a TCP SYN (raw
//! socket) to every port 1..=65535 of the pool address: first to every
//! unmapped port in bulk, then to the two mapped ports one probe at a time,
//! so the fate of each of those is known. What reaches the inside is
//! counted at the inside hosts, on their interfaces, by nftables.

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
use xnat_tests::wait::{SOON, wait_until};

const POOL1: &str = "198.51.100.1";
/// Ports scanned per batch before waiting for the gateway to take them
/// (four packets each: small enough that the receive backlog, 1000
/// packets per CPU shared by every namespace, rarely overflows; a batch
/// that lost packets is sent again).
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

/// (rx_packets, tx_dropped) of `dev` in `ns` (/proc/net/dev of the
/// namespace).
fn dev_counters(ns: &Netns, dev: &str) -> (u64, u64) {
    let text = ns
        .in_ns(|| std::fs::read_to_string("/proc/thread-self/net/dev"))
        .expect("reading /proc/net/dev");
    let prefix = format!("{dev}:");
    let fields: Vec<u64> = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&prefix))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(fields.len() >= 16, "no counters of {dev} in:\n{text}");
    // rx: bytes packets errs drop fifo frame compressed multicast; tx: ...
    (fields[1], fields[11])
}

/// The scan's path into the gateway: what the external interface took in,
/// and what the veths on the way (server → router → gateway) dropped
/// because a receive queue was full (a veth counts that as its sender's
/// tx drop).
struct Path<'a> {
    f: &'a FaultTopo,
}

impl Path<'_> {
    /// (packets the gateway received on EXT, packets dropped on the way).
    fn counters(&self) -> (u64, u64) {
        let (rx, _) = dev_counters(&self.f.t.nat, &self.f.t.ext);
        let (_, d1) = dev_counters(&self.f.t.srv, "eth0");
        let (_, d2) = dev_counters(&self.f.t.rtr, "eth0");
        (rx, d1 + d2)
    }

    /// Sends a batch with `send` (which returns how many packets it sent)
    /// until one attempt gets through without a drop, waiting each time
    /// until every packet arrived or was dropped. Resending is harmless:
    /// the bulk scan skips the mapped ports, so no probe of it may get in.
    fn send_whole(&self, what: &str, mut send: impl FnMut() -> u64) {
        for _attempt in 0..10 {
            let (rx0, drop0) = self.counters();
            let n = send();
            let mut dropped = 0;
            wait_until(SOON, what, || {
                let (rx, drop) = self.counters();
                dropped = drop - drop0;
                rx - rx0 + dropped >= n
            });
            if dropped == 0 {
                return;
            }
        }
        panic!("{what}: every attempt lost packets on the way (a receive queue overflowed)");
    }
}

/// Promise: a scan of every port but the two mapped ones, from both
/// scanners, gets nothing in (counted at the inside hosts) and is not
/// counted as filtered (those ports belong to the gateway); then, of the
/// probes to the mapped ports, exactly those the filtering mode admits
/// reach host A (the UDP ones the mapped socket), and each refused one is
/// counted in `drop_filtered_inbound`.
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
    let syn =
        |i: usize, port: u16| Packet::tcp(scanners[i], pub_ip, Tcp::syn(9998, port)).ip_bytes();
    let path = Path { f: &f };
    let started = std::time::Instant::now();
    // 1. Every port but the two mapped ones: nothing may get in.
    for first in (1..=65535u32).step_by(BATCH as usize) {
        let ports = first..(first + BATCH as u32).min(65536);
        path.send_whole("a batch of the scan to reach the gateway", || {
            let mut sent = 0;
            for port in ports.clone() {
                let port = port as u16;
                for (i, sock) in udp.iter().enumerate() {
                    if port != udp_public.port() {
                        sock.send_to(b"scan", sa(pub_ip, port)).unwrap();
                        sent += 1;
                    }
                    if port != tcp_public.port() {
                        raw.send(&syn(i, port)).unwrap();
                        sent += 1;
                    }
                }
            }
            sent
        });
    }
    eprintln!(
        "{filtering}: scanned 65535 ports x 2 protocols x 2 scanners in {:?}",
        started.elapsed()
    );
    assert_eq!(
        count_a.packets() + count_b.packets(),
        0,
        "--filtering {filtering}: the scan of unmapped ports got in"
    );
    assert_eq!(
        f.t.counter("drop_filtered_inbound"),
        filtered0,
        "--filtering {filtering}: unmapped ports counted as filtered"
    );

    // 2. The mapped ports, one probe at a time on a quiet path: an
    // admitted one arrives (counted at host A), a refused one is counted
    // as filtered.
    let mut arrived = 0;
    let mut refused = 0;
    for (i, scanner) in scanners.iter().enumerate() {
        for proto in ["udp", "tcp"] {
            let (a0, r0) = (count_a.packets(), f.t.counter("drop_filtered_inbound"));
            // Resent if a queue on the way dropped it; one copy reaches
            // the gateway.
            path.send_whole("a probe to a mapped port to reach the gateway", || {
                if proto == "udp" {
                    udp[i].send_to(b"probe", udp_public).unwrap();
                } else {
                    raw.send(&syn(i, tcp_public.port())).unwrap();
                }
                1
            });
            let what = format!("{proto} probe from {scanner} to be admitted or counted");
            wait_until(SOON, &what, || {
                count_a.packets() > a0 || f.t.counter("drop_filtered_inbound") > r0
            });
            let got_in = count_a.packets() > a0;
            assert_eq!(
                got_in,
                admit[i],
                "--filtering {filtering}: {proto} probe from {scanner} to a mapped port {}",
                if got_in { "got in" } else { "was refused" }
            );
            if got_in {
                arrived += 1;
            } else {
                refused += 1;
            }
        }
    }
    let admitted: Vec<Ipv4Addr> = scanners
        .iter()
        .zip(admit)
        .filter(|(_, a)| *a)
        .map(|(s, _)| *s)
        .collect();
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
    assert!(got.iter().all(|(d, _)| d == b"probe"), "{got:?}");
    assert_eq!(
        count_b.packets(),
        0,
        "--filtering {filtering}: probes reached host B"
    );
    assert_eq!(
        count_a.packets(),
        arrived,
        "--filtering {filtering}: packets from the scanners at host A"
    );
    assert_eq!(
        f.t.counter("drop_filtered_inbound") - filtered0,
        refused,
        "--filtering {filtering}: drop_filtered_inbound"
    );
    drop(conn);
    f.stop();
}
