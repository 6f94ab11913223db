//! Fault: table updates racing the data plane under traffic (issue 6), in
//! network namespaces (root): `xnat map add/del` and `xnat forward
//! add/del`, repeated while packets of the flows they affect go through.
//! Topology: `xnat_tests::napt_topo`; load: `xnat_tests::load`.

use std::time::Duration;

use xnat_tests::agent::run_xnat;
use xnat_tests::fault_topo::FaultTopo;
use xnat_tests::hairpin_topo::snmp;
use xnat_tests::load::UdpLoad;
use xnat_tests::napt_topo::{HOST_A, HOST_C, HOST_FWD, POOL, SRV1, SRV3, sa, udp_bind};
use xnat_tests::nft::IngressCounter;
use xnat_tests::topology::Ingress;
use xnat_tests::wait::{SOON, wait_until};

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
        SOON,
        "the router to have received every packet xnat translated out",
        || out_at_rtr.packets() == f.t.counter("egress_translated_packets") - eg0,
    );
    wait_until(
        SOON,
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
/// it takes effect between packets. A background client sends to the
/// forwarded port all along (the race); eight marker clients send rounds
/// whose fate is known: every round sent once `forward add` has returned
/// reaches the inside server, every round sent once `forward del` has
/// returned is refused by the gateway itself (each marker socket gets its
/// port unreachable). Everything that arrives inside comes from the
/// client's real source, intact; every packet the ingress counter counts
/// arrives at the inside host; nothing reaches any other inside endpoint;
/// no checksum breaks. (The inside server only listens: a reply in flight
/// when the forward goes would make a dynamic mapping of its endpoint, and
/// `forward add` then refuses that endpoint, as documented.)
fn forward_races_traffic(tag: &str, mode: Ingress) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut f = FaultTopo::new(tag, mode);
    f.start(&["--pool", POOL1, "--internal", "10.0.0.0/8"]);
    let public = sa(POOL[0], 8080);
    let inside = sa(HOST_FWD, 53);
    let at_fwd = IngressCounter::new(&f.t.b, "fwd", "eth0", &["udp", "dport", "53"]);
    let marked = IngressCounter::new(&f.t.b, "mark", "eth0", &["udp", "sport", "9100-9107"]);
    let at_b = IngressCounter::new(&f.t.b, "all", "eth0", &["ip", "saddr", "203.0.113.0/24"]);
    let at_a = IngressCounter::new(&f.t.a, "all", "eth0", &["ip", "saddr", "203.0.113.0/24"]);
    let in0 = f.t.counter("ingress_translated_packets");
    let csum0 = csum_errors(&f);

    let sink = udp_bind(&f.t.b, inside);
    // Markers 0..8 (connected, so the gateway's port unreachable shows up
    // on them) and the background client 8.
    let clients: Vec<_> = (0..9)
        .map(|i| udp_bind(&f.t.srv, sa(SRV3, 9100 + i)))
        .collect();
    let (markers, background) = clients.split_at(8);
    for m in markers {
        m.connect(public).unwrap();
        m.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    // The sink records what arrives; it answers nothing (see above).
    let sink_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            sink.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut buf = [0u8; 64];
            let started = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(300) {
                if let Ok((n, from)) = sink.recv_from(&mut buf) {
                    got.push((buf[..n].to_vec(), from));
                }
            }
            got
        })
    };
    let msg =
        |round: u32, client: usize| [round.to_be_bytes(), (client as u32).to_be_bytes()].concat();
    let bg = background[0].try_clone().unwrap();
    let bg_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(300) {
                let _ = bg.send_to(&msg(u32::MAX, 8), public);
                // Pacing, not synchronisation: 500 datagrams a second,
                // below the gateway's ICMP budget for the refused ones.
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let send_round = |round: u32| {
        for (i, m) in markers.iter().enumerate() {
            m.send(&msg(round, i)).unwrap();
        }
    };
    let add = || {
        xnat_ok(
            &f,
            &["forward", "add", "udp", "198.51.100.1:8080", "10.0.0.5:53"],
        )
    };
    let mut round = 0u32;
    let mut in_place = 0u64;
    let mut deleted = std::collections::BTreeSet::new();
    for _ in 0..TOGGLES {
        add();
        for _ in 0..3 {
            round += 1;
            send_round(round);
            in_place += 1;
        }
        let want = in_place * markers.len() as u64;
        wait_until(SOON, "the marker rounds to arrive inside", || {
            marked.packets() >= want
        });
        xnat_ok(&f, &["forward", "del", "udp", "198.51.100.1:8080"]);
        round += 1;
        send_round(round);
        deleted.insert(round);
        for (i, m) in markers.iter().enumerate() {
            wait_until(
                SOON,
                &format!("marker {i} to be refused by the gateway after `forward del`"),
                || {
                    let mut buf = [0u8; 16];
                    match m.recv(&mut buf) {
                        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
                        Ok(n) => panic!("marker {i} got {n} bytes back"),
                    }
                },
            );
        }
    }
    add();
    stop.store(true, Ordering::Relaxed);
    bg_thread.join().unwrap();
    wait_until(
        SOON,
        "host B to have received every packet xnat translated in",
        || at_fwd.packets() == f.t.counter("ingress_translated_packets") - in0,
    );
    let got = sink_thread.join().unwrap();
    let mut marker_rounds = 0u64;
    let mut background_n = 0u64;
    for (d, from) in &got {
        let std::net::SocketAddr::V4(from) = from else {
            panic!("{from}")
        };
        assert_eq!(d.len(), 8, "datagram from {from} mangled: {d:?}");
        let r = u32::from_be_bytes(d[..4].try_into().unwrap());
        let i = u32::from_be_bytes(d[4..8].try_into().unwrap()) as u16;
        assert_eq!(
            *from,
            sa(SRV3, 9100 + i),
            "datagram of client {i} arrived from {from}"
        );
        if i == 8 {
            background_n += 1;
        } else {
            assert!(
                !deleted.contains(&r),
                "round {r}, sent after `forward del`, got in"
            );
            marker_rounds += 1;
        }
    }
    assert_eq!(
        marker_rounds,
        in_place * markers.len() as u64,
        "marker datagrams inside"
    );
    assert!(
        background_n > 0,
        "no background datagram got through: no race"
    );
    eprintln!("forward race: {background_n} background datagrams got through");
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

mod reload_races_traffic {
    #[test]
    fn tc() {
        super::reload_races_traffic("rrld", xnat_tests::topology::Ingress::Tc);
    }
}

/// Promise: `xnat reload` under traffic applies only the difference, with
/// every packet translated by the old or the new settings. Two configs
/// alternate ten times: one maps 10.0.0.4 statically to 198.51.100.4 and
/// uses address-and-port filtering with a shorter UDP timeout, the other
/// neither. Host A's flows, which no change concerns, keep their one
/// public endpoint and never stop; 10.0.0.4's flows are seen either from
/// the static address with their own port or from their one NAPT
/// endpoint; no private source leaves; every reload is applied.
fn reload_races_traffic(tag: &str, mode: Ingress) {
    let mut f = FaultTopo::new(tag, mode);
    let dir = std::env::temp_dir().join(format!("xnat-rrld-{}-{}", std::process::id(), f.t.ext));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = RemoveDir(dir.clone());
    let config = dir.join("xnat.toml");
    let plain = "[napt]\ninternal = [\"10.0.0.0/8\"]\npool = [\"198.51.100.1\"]\n";
    let changed = format!(
        "[[map]]\nprivate = \"10.0.0.4\"\npublic = \"{STATIC_PUB}\"\n\n{plain}filtering = \"address-and-port\"\ntimeouts = {{ udp = 200 }}\n"
    );
    std::fs::write(&config, plain).unwrap();
    f.start(&["--config", config.to_str().unwrap()]);
    let leak = IngressCounter::new(&f.t.rtr, "leak", "eth0", &["ip", "saddr", "10.0.0.0/8"]);

    let server = sa(SRV1, 7000);
    let a_ports: Vec<u16> = (47000..47008).collect();
    let c_ports: Vec<u16> = (47000..47008).collect();
    let mut clients: Vec<_> = a_ports
        .iter()
        .map(|p| udp_bind(&f.t.a, sa(HOST_A, *p)))
        .collect();
    clients.extend(c_ports.iter().map(|p| udp_bind(&f.t.b, sa(HOST_C, *p))));
    let srv = udp_bind(&f.t.srv, server);
    let load = UdpLoad::start(
        clients,
        srv,
        server,
        &[POOL[0], POOL[3]],
        Duration::from_millis(5),
    );
    load.wait_all_echo(&load.seen(), RECOVER, "every flow to work");
    for i in 0..10 {
        let text = if i % 2 == 0 { changed.as_str() } else { plain };
        std::fs::write(&config, text).unwrap();
        let (code, out, err) = run_xnat(&f.t.nat, &["reload", "-i", &f.t.ext]);
        assert_eq!(code, 0, "reload {i}: {out}{err}");
        let before = load.seen();
        load.wait_all_echo(
            &before,
            RECOVER,
            &format!("every flow to work after reload {i}"),
        );
    }
    let seen = load.stop();
    assert!(seen.anomalies.is_empty(), "{}", seen.anomalies.join("\n"));
    let mut via_static = 0;
    for (i, p) in seen.public.iter().enumerate() {
        let napt: Vec<_> = p.iter().filter(|e| *e.ip() == POOL[0]).collect();
        assert_eq!(napt.len(), 1, "flow {i}: NAPT endpoints {p:?}");
        if i < a_ports.len() {
            assert_eq!(p.len(), 1, "host A's flow {i} changed endpoint: {p:?}");
        } else {
            for e in p.iter().filter(|e| *e.ip() == POOL[3]) {
                assert_eq!(e.port(), c_ports[i - a_ports.len()]);
                via_static += 1;
            }
        }
        assert!(
            seen.echo_from[i].iter().all(|e| *e == server),
            "flow {i} got echoes from {:?}",
            seen.echo_from[i]
        );
    }
    assert_eq!(
        via_static,
        c_ports.len(),
        "10.0.0.4's flows never used the static map"
    );
    assert_eq!(leak.packets(), 0, "a private source left the gateway");
    f.stop();
}

struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
