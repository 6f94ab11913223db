//! Fault: table updates racing the data plane under traffic (issue 6), in
//! network namespaces (root): `xnat map add/del` and `xnat forward
//! add/del`, repeated while packets of the flows they affect go through.
//! Topology: `xnat_tests::napt_topo`; load: `xnat_tests::load`.

use std::net::SocketAddrV4;
use std::time::Duration;

use xnat_tests::daemon_topo::run_xnat;
use xnat_tests::fault_topo::FaultTopo;
use xnat_tests::hairpin_topo::snmp;
use xnat_tests::load::UdpLoad;
use xnat_tests::napt_topo::{HOST_C, HOST_FWD, POOL, SRV1, SRV3, sa, udp_bind};
use xnat_tests::nft::IngressCounter;
use xnat_tests::topology::Ingress;
use xnat_tests::wait::wait_until;

const POOL1: &str = "198.51.100.1";
/// The static public address 10.0.0.4 gets while its map is in place.
const STATIC_PUB: &str = "198.51.100.4";
/// add/del pairs per race.
const TOGGLES: usize = 25;
const RECOVER: Duration = Duration::from_secs(20);

/// Runs `xnat ARGS -i EXT` in the gateway; panics unless it succeeds.
fn xnat_ok(f: &FaultTopo, args: &[&str]) {
    let mut v = args.to_vec();
    v.extend_from_slice(&["-i", &f.t.ext]);
    let (code, out, err) = run_xnat(&f.t.nat, &v);
    assert_eq!(code, 0, "`xnat {}`: {out}{err}", v.join(" "));
}

/// UDP checksum errors the kernel of the server and of host B counted.
fn csum_errors(f: &FaultTopo) -> u64 {
    snmp(&f.t.srv, "Udp", "InCsumErrors") + snmp(&f.t.b, "Udp", "InCsumErrors")
}

mod static_map_races_traffic {
    #[test]
    fn tc() {
        super::static_map_races_traffic("rmap", xnat_tests::topology::Ingress::Tc);
    }
}

/// Promise: a static map added or deleted while its host's flows run
/// takes effect between packets. Each packet is translated wholly by the
/// old table or wholly by the new one: a flow is seen outside either from
/// its static address with its own port, or from its one NAPT endpoint
/// (the NAPT mapping survives the static periods), never from a private
/// address, never with a bad checksum; every packet the egress counter
/// counts reaches the router and every one the ingress counter counts
/// reaches the inside host; at the end every flow works.
fn static_map_races_traffic(tag: &str, mode: Ingress) {
    let mut f = FaultTopo::new(tag, mode);
    f.start(&["--pool", POOL1, "--internal", "10.0.0.0/8"]);
    let leak = IngressCounter::new(&f.t.rtr, "leak", "eth0", &["ip", "saddr", "10.0.0.0/8"]);
    let out_at_rtr = IngressCounter::new(
        &f.t.rtr,
        "out",
        "eth0",
        &["ip", "saddr", "198.51.100.0/24", "udp", "dport", "7000"],
    );
    let in_at_b = IngressCounter::new(&f.t.b, "in", "eth0", &["udp", "sport", "7000"]);
    let csum0 = csum_errors(&f);
    let (eg0, in0) = (
        f.t.counter("egress_translated_packets"),
        f.t.counter("ingress_translated_packets"),
    );

    let server = sa(SRV1, 7000);
    let ports: Vec<u16> = (46000..46008).collect();
    let clients = ports
        .iter()
        .map(|p| udp_bind(&f.t.b, sa(HOST_C, *p)))
        .collect();
    let srv = udp_bind(&f.t.srv, server);
    let load = UdpLoad::start(
        clients,
        srv,
        server,
        &[POOL[0], POOL[3]],
        Duration::from_millis(5),
    );
    load.wait_all_echo(&load.seen(), RECOVER, "every flow to work");
    for _ in 0..TOGGLES {
        xnat_ok(&f, &["map", "add", "10.0.0.4", STATIC_PUB]);
        xnat_ok(&f, &["map", "del", "10.0.0.4"]);
    }
    load.wait_all_echo(&load.seen(), RECOVER, "every flow to work after the race");
    let seen = load.stop();
    assert!(seen.anomalies.is_empty(), "{}", seen.anomalies.join("\n"));

    let mut napt = std::collections::BTreeSet::new();
    let mut via_static = 0;
    for (i, p) in seen.public.iter().enumerate() {
        let inside_port = ports[i];
        for e in p {
            if *e.ip() == POOL[3] {
                assert_eq!(e.port(), inside_port, "static translation changed the port");
                via_static += 1;
            } else {
                assert!(napt.insert(*e), "two flows share {e}");
            }
        }
        let n = p.iter().filter(|e| *e.ip() == POOL[0]).count();
        assert_eq!(n, 1, "flow {i} had {n} NAPT endpoints: {p:?}");
        assert!(
            seen.echo_from[i].iter().all(|e| *e == server),
            "flow {i} got echoes from {:?}",
            seen.echo_from[i]
        );
    }
    assert!(
        via_static > 0,
        "no flow was ever seen through the static map: the race did not happen"
    );

    // Counters right: what xnat counts is what went through.
    wait_until(
        Duration::from_secs(10),
        "the router to have received every packet xnat translated out",
        || out_at_rtr.packets() == f.t.counter("egress_translated_packets") - eg0,
    );
    wait_until(
        Duration::from_secs(10),
        "host B to have received every packet xnat translated in",
        || in_at_b.packets() == f.t.counter("ingress_translated_packets") - in0,
    );
    assert_eq!(leak.packets(), 0, "a private source left the gateway");
    assert_eq!(
        csum_errors(&f),
        csum0,
        "datagrams with bad checksums arrived"
    );
    f.stop();
}

mod forward_races_traffic {
    #[test]
    fn tc() {
        super::forward_races_traffic("rfwd", xnat_tests::topology::Ingress::Tc);
    }
}

/// Promise: a port forward added or deleted while outside clients send to
/// it takes effect between packets. A datagram to the forwarded port
/// reaches the inside server, with the client's real source and intact,
/// exactly when the forward is in place (otherwise the gateway itself gets
/// it); every one the ingress counter counts arrives at the inside host;
/// nothing reaches any other inside endpoint. (The inside server only
/// listens here: a reply in flight when the forward goes would make a
/// dynamic mapping of its endpoint, and `forward add` then refuses that
/// endpoint, as documented.)
fn forward_races_traffic(tag: &str, mode: Ingress) {
    let mut f = FaultTopo::new(tag, mode);
    f.start(&["--pool", POOL1, "--internal", "10.0.0.0/8"]);
    let public = sa(POOL[0], 8080);
    let inside = sa(HOST_FWD, 53);
    let at_fwd = IngressCounter::new(&f.t.b, "fwd", "eth0", &["udp", "dport", "53"]);
    let at_b = IngressCounter::new(&f.t.b, "all", "eth0", &["ip", "saddr", "203.0.113.0/24"]);
    let at_a = IngressCounter::new(&f.t.a, "all", "eth0", &["ip", "saddr", "203.0.113.0/24"]);
    let in0 = f.t.counter("ingress_translated_packets");
    let csum0 = csum_errors(&f);

    let sink = udp_bind(&f.t.b, inside);
    let clients: Vec<_> = (0..8)
        .map(|i| udp_bind(&f.t.srv, sa(SRV3, 9100 + i)))
        .collect();
    let client_addrs: Vec<SocketAddrV4> = clients
        .iter()
        .map(|c| match c.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            a => panic!("{a}"),
        })
        .collect();
    // The sink records what arrives; it answers nothing (see above).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sink_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            sink.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut buf = [0u8; 64];
            let started = std::time::Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(300)
            {
                if let Ok((n, from)) = sink.recv_from(&mut buf) {
                    got.push((buf[..n].to_vec(), from));
                }
            }
            got
        })
    };
    let send_round = |round: u32| {
        for (i, c) in clients.iter().enumerate() {
            let msg = [round.to_be_bytes(), (i as u32).to_be_bytes()].concat();
            let _ = c.send_to(&msg, public);
        }
    };
    let mut round = 0u32;
    for _ in 0..TOGGLES {
        xnat_ok(
            &f,
            &["forward", "add", "udp", "198.51.100.1:8080", "10.0.0.5:53"],
        );
        for _ in 0..3 {
            round += 1;
            send_round(round);
        }
        xnat_ok(&f, &["forward", "del", "udp", "198.51.100.1:8080"]);
        round += 1;
        send_round(round);
    }
    // The forward in place at the end: the next round must arrive whole.
    xnat_ok(
        &f,
        &["forward", "add", "udp", "198.51.100.1:8080", "10.0.0.5:53"],
    );
    let total = at_fwd.packets();
    round += 1;
    send_round(round);
    wait_until(
        Duration::from_secs(10),
        "the last round to reach the inside server",
        || at_fwd.packets() >= total + clients.len() as u64,
    );
    wait_until(
        Duration::from_secs(10),
        "host B to have received every packet xnat translated in",
        || at_fwd.packets() == f.t.counter("ingress_translated_packets") - in0,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let got = sink_thread.join().unwrap();
    assert!(
        got.len() as u64 >= clients.len() as u64 * TOGGLES as u64,
        "only {} datagrams reached the forwarded server",
        got.len()
    );
    for (d, from) in &got {
        let std::net::SocketAddr::V4(from) = from else {
            panic!("{from}")
        };
        assert_eq!(d.len(), 8, "datagram from {from} mangled: {d:?}");
        let i = u32::from_be_bytes(d[4..8].try_into().unwrap()) as usize;
        assert_eq!(
            client_addrs.get(i),
            Some(from),
            "datagram of client {i} arrived from {from}"
        );
    }
    assert_eq!(
        at_b.packets(),
        at_fwd.packets(),
        "packets from outside reached another endpoint of host B"
    );
    assert_eq!(at_a.packets(), 0, "packets from outside reached host A");
    assert_eq!(
        csum_errors(&f),
        csum0,
        "datagrams with bad checksums arrived"
    );
    f.stop();
}
