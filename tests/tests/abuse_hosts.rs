//! Abuse from the inside (issue 6), in network namespaces (root): a host
//! opening flows as fast as it can, and packets with spoofed sources.
//! Topology: `xnat_tests::napt_topo`.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xnat_tests::fault_topo::FaultTopo;
use xnat_tests::frame::{Packet, Udp};
use xnat_tests::hairpin_topo::{RawIp, expect_datagram};
use xnat_tests::napt_topo::{HOST_A, HOST_B, HOST_C, POOL, SRV1, sa, udp_bind, udp_deliver};
use xnat_tests::nft::IngressCounter;
use xnat_tests::topology::Ingress;

const POOL1: &str = "198.51.100.1";
/// `--max-ports-per-host` of the flood test.
const CAP: u64 = 64;
/// How long host A floods.
const FLOOD: Duration = Duration::from_secs(3);

mod flood_is_capped_per_host {
    #[test]
    fn tc() {
        super::flood_is_capped_per_host("cap", xnat_tests::topology::Ingress::Tc);
    }
}

/// Promise (`--max-ports-per-host 64`): host A sending from 10000 source
/// ports as fast as a raw socket can holds exactly 64 public ports; its
/// other new flows are dropped and counted (`drop_host_port_cap`), never
/// sent untranslated; meanwhile the other inside hosts open flows and get
/// ports; A's own mappings keep working (and keep their public endpoint).
fn flood_is_capped_per_host(tag: &str, mode: Ingress) {
    let mut f = FaultTopo::new(tag, mode);
    f.start(&[
        "--pool",
        POOL1,
        "--internal",
        "10.0.0.0/8",
        "--max-ports-per-host",
        &CAP.to_string(),
    ]);
    let leak = IngressCounter::new(&f.t.rtr, "leak", "eth0", &["ip", "saddr", "10.0.0.0/8"]);
    let raw = RawIp::open(&f.t.a);
    let done = AtomicBool::new(false);
    let srv = udp_bind(&f.t.srv, sa(SRV1, 7000));
    let (sent, others) = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            let started = Instant::now();
            let mut sent = 0u64;
            // Bounded by FLOOD; cycles over 10000 source ports.
            while started.elapsed() < FLOOD {
                for port in 30000..40000u16 {
                    let p = Packet::udp(HOST_A, SRV1, Udp::new(port, 7100, b"flood"));
                    raw.send(&p.ip_bytes()).expect("raw send");
                    sent += 1;
                }
            }
            done.store(true, Ordering::Relaxed);
            sent
        });
        // While A floods: B and C open flows, one after another (fewer
        // than the cap each: they are capped too).
        let mut others = Vec::new();
        let mut i = 0u16;
        while !done.load(Ordering::Relaxed) && u64::from(i) < CAP / 2 {
            for host in [HOST_B, HOST_C] {
                let sock = udp_bind(&f.t.b, sa(host, 50000 + i));
                let public = udp_deliver(&sock, sa(SRV1, 7000), &srv, b"other host");
                assert_eq!(*public.ip(), POOL[0]);
                others.push((sock, public));
            }
            i += 1;
        }
        (flood.join().unwrap(), others)
    });
    eprintln!(
        "flood: {sent} datagrams from 10000 ports in {FLOOD:?}; {} flows of B and C opened meanwhile",
        others.len()
    );
    assert!(
        others.len() >= 4,
        "the other hosts opened only {} flows",
        others.len()
    );
    assert!(sent > 10000, "the flood sent only {sent}");

    let flows_a = f.t.flows(&["--inside", "10.0.0.2"]);
    assert_eq!(flows_a.len() as u64, CAP, "public ports of host A");
    let capped = f.t.counter("drop_host_port_cap");
    assert!(
        capped >= 10000 - CAP,
        "drop_host_port_cap = {capped}, want every refused new flow counted"
    );
    assert_eq!(
        f.t.counter("napt_mappings_created"),
        CAP + others.len() as u64,
        "mappings: A's cap plus one per flow of B and C"
    );
    // A's mappings still work: a socket on a mapped port goes out through
    // its mapping; B's and C's flows too.
    let one = &flows_a[0];
    let sock = udp_bind(&f.t.a, one.inside);
    assert_eq!(
        udp_deliver(&sock, sa(SRV1, 7000), &srv, b"A again"),
        one.public
    );
    assert_eq!(
        udp_deliver(&srv, one.public, &sock, b"back"),
        sa(SRV1, 7000)
    );
    for (s, p) in others.iter().take(4) {
        assert_eq!(udp_deliver(s, sa(SRV1, 7000), &srv, b"again"), *p);
    }
    assert_eq!(leak.packets(), 0, "a private source left the gateway");
    f.stop();
}

mod spoofed_sources_not_translated {
    #[test]
    fn tc() {
        super::spoofed_sources_not_translated("spf", xnat_tests::topology::Ingress::Tc);
    }
}

/// Promise (`--internal 10.0.0.0/24`): packets from the inside whose
/// source lies outside the internal prefixes are not translated — they
/// leave with their source and port unchanged (the kernel's routing and
/// reverse-path policy decide whether they leave at all; the test turns
/// reverse-path filtering off to see xnat's part) and make no binding —
/// while a packet from an internal source right after them is translated.
fn spoofed_sources_not_translated(tag: &str, mode: Ingress) {
    let mut f = FaultTopo::new(tag, mode);
    for ns in [&f.t.nat, &f.t.rtr] {
        for key in ["all", "default"] {
            ns.sysctl(&format!("net.ipv4.conf.{key}.rp_filter"), "0");
        }
    }
    f.t.nat.sysctl("net.ipv4.conf.int0.rp_filter", "0");
    f.t.rtr.sysctl("net.ipv4.conf.eth0.rp_filter", "0");
    f.start(&["--pool", POOL1, "--internal", "10.0.0.0/24"]);
    let spoofs: [Ipv4Addr; 5] = [
        Ipv4Addr::new(192, 168, 77, 7),
        Ipv4Addr::new(172, 16, 0, 9),
        // In 10/8 but outside the configured 10.0.0.0/24.
        Ipv4Addr::new(10, 0, 1, 5),
        // In the pool's prefix, not a pool address.
        Ipv4Addr::new(198, 51, 100, 9),
        Ipv4Addr::new(203, 0, 113, 99),
    ];
    let srv = udp_bind(&f.t.srv, sa(SRV1, 7200));
    let raw = RawIp::open(&f.t.a);
    for (i, src) in spoofs.iter().enumerate() {
        let msg = format!("spoof {i}");
        let p = Packet::udp(*src, SRV1, Udp::new(5555, 7200, msg.as_bytes()));
        // A few tries: a busy machine's receive queues may drop one.
        let from = (0..5).find_map(|_| {
            raw.send(&p.ip_bytes()).expect("raw send");
            expect_datagram(&srv, msg.as_bytes(), Duration::from_secs(1))
        });
        assert_eq!(
            from,
            Some(sa(*src, 5555)),
            "the datagram from spoofed {src}:5555 reached the server as"
        );
    }
    // The control: a real internal source right after them is translated.
    let sock = udp_bind(&f.t.a, sa(HOST_A, 40000));
    assert_eq!(
        udp_deliver(&sock, sa(SRV1, 7200), &srv, b"real"),
        sa(POOL[0], 40000)
    );
    assert_eq!(
        f.t.counter("napt_mappings_created"),
        1,
        "a spoofed source got a mapping"
    );
    let flows = f.t.flows(&[]);
    assert!(
        flows.len() == 1 && flows[0].inside == sa(HOST_A, 40000),
        "flows: {flows:?}"
    );
    f.stop();
}
