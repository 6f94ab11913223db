//! Faults: the binding tables filled to their limits (issue 6), in network
//! namespaces (root). Topology: `xnat_tests::napt_topo`.

use std::net::UdpSocket;
use std::time::Duration;

use xnat_tests::fault_topo::FaultTopo;
use xnat_tests::napt_topo::{
    HOST_A, HOST_B, HOST_C, POOL, SRV1, drain_for, sa, udp_bind, udp_deliver,
};
use xnat_tests::topology::Ingress;
use xnat_tests::wait::{SOON, wait_until};

const POOL1: &str = "198.51.100.1";

/// Sends one datagram per socket in `refused` and waits until `counter`
/// counted each one; then checks (after a working flow's round trip on
/// the same path, so nothing is still in flight) that none reached `srv`.
fn expect_refused(
    f: &FaultTopo,
    refused: &[UdpSocket],
    to: std::net::SocketAddrV4,
    srv: &UdpSocket,
    working: &UdpSocket,
    counter: &str,
) {
    let before = f.t.counter(counter);
    for s in refused {
        s.send_to(b"refused", to).unwrap();
    }
    let n = refused.len() as u64;
    wait_until(
        SOON,
        &format!("{counter} to count {n} refused flows"),
        || f.t.counter(counter) >= before + n,
    );
    assert_eq!(
        f.t.counter(counter),
        before + n,
        "{counter}: one per refusal"
    );
    udp_deliver(working, to, srv, b"still working");
    let got = drain_for(srv, Duration::from_millis(200));
    assert!(
        got.iter().all(|(d, _)| d != b"refused"),
        "a refused flow reached the server: {got:?}"
    );
}

mod mapping_table_full {
    #[test]
    fn tc() {
        super::mapping_table_full("mful", xnat_tests::topology::Ingress::Tc);
    }
}

/// Promise (`--max-mappings 16`): the table holds exactly 16 mappings; a
/// new inside endpoint beyond that is refused — its packets dropped, never
/// sent untranslated, each counted in `drop_mapping_table_full` — while
/// the 16 existing flows keep working both ways (no eviction: no LRU);
/// once they expire, the refused endpoints get ports.
fn mapping_table_full(tag: &str, mode: Ingress) {
    let mut f = FaultTopo::new(tag, mode);
    f.start(&[
        "--pool",
        POOL1,
        "--internal",
        "10.0.0.0/8",
        "--max-mappings",
        "16",
        "--timeout",
        "udp=3",
    ]);
    let to = sa(SRV1, 7000);
    let srv = udp_bind(&f.t.srv, to);
    let mut socks = Vec::new();
    for i in 0..8 {
        socks.push(udp_bind(&f.t.a, sa(HOST_A, 44000 + i)));
        socks.push(udp_bind(&f.t.b, sa(HOST_B, 44000 + i)));
        socks.push(udp_bind(&f.t.b, sa(HOST_C, 44000 + i)));
    }
    let (first, rest) = socks.split_at(16);
    let mut publics = Vec::new();
    for s in first {
        publics.push(udp_deliver(s, to, &srv, b"fits"));
    }
    assert_eq!(f.t.napt_stat("mappings"), 16);
    expect_refused(&f, rest, to, &srv, &first[0], "drop_mapping_table_full");
    assert_eq!(
        f.t.napt_stat("mappings"),
        16,
        "the table grew past its limit"
    );
    assert_eq!(f.t.counter("napt_mappings_created"), 16);
    // Every existing flow, both ways, with its public endpoint.
    for (s, p) in first.iter().zip(&publics) {
        assert_eq!(udp_deliver(s, to, &srv, b"again"), *p);
        assert_eq!(udp_deliver(&srv, *p, s, b"back"), to);
    }
    // Once idle long enough, they expire and the refused ones get ports.
    wait_until(SOON, "the 16 idle mappings to expire", || {
        f.t.napt_stat("mappings") == 0
    });
    for s in rest {
        let p = udp_deliver(s, to, &srv, b"my turn");
        assert_eq!(*p.ip(), POOL[0]);
    }
    assert_eq!(f.t.napt_stat("mappings"), rest.len() as u64);
    f.stop();
}

mod session_table_full {
    #[test]
    fn tc() {
        super::session_table_full("sful", xnat_tests::topology::Ingress::Tc);
    }
}

/// Promise (`--max-sessions 8`, which caps the sessions beyond each
/// mapping's first): one inside endpoint talking to 12 remotes gets
/// exactly 9 sessions, its first (held in the mapping) and 8 more; packets
/// to the other 3, and an inbound packet that would need a tenth, are
/// dropped and counted in `drop_session_table_full`; the 9 keep working;
/// after they expire, the other remotes can be reached.
fn session_table_full(tag: &str, mode: Ingress) {
    let mut f = FaultTopo::new(tag, mode);
    f.start(&[
        "--pool",
        POOL1,
        "--internal",
        "10.0.0.0/8",
        "--max-sessions",
        "8",
        "--timeout",
        "udp=3",
    ]);
    let inside = udp_bind(&f.t.a, sa(HOST_A, 43000));
    let remotes: Vec<_> = (0..12).map(|i| sa(SRV1, 7000 + i)).collect();
    let servers: Vec<_> = remotes.iter().map(|r| udp_bind(&f.t.srv, *r)).collect();
    for (r, s) in remotes.iter().zip(&servers).take(9) {
        let p = udp_deliver(&inside, *r, s, b"fits");
        assert_eq!(p, sa(POOL[0], 43000));
    }
    assert_eq!(f.t.napt_stat("sessions"), 9);
    let before = f.t.counter("drop_session_table_full");
    for r in &remotes[9..] {
        inside.send_to(b"refused", r).unwrap();
    }
    wait_until(SOON, "drop_session_table_full to count 3 refusals", || {
        f.t.counter("drop_session_table_full") >= before + 3
    });
    assert_eq!(f.t.counter("drop_session_table_full"), before + 3);
    // Inbound too: a new port of an admitted address would need a session
    // (address-dependent filtering admits it); it is refused and counted.
    let newcomer = udp_bind(&f.t.srv, sa(SRV1, 7100));
    newcomer.send_to(b"refused", sa(POOL[0], 43000)).unwrap();
    wait_until(
        SOON,
        "drop_session_table_full to count the inbound refusal",
        || f.t.counter("drop_session_table_full") >= before + 4,
    );
    let got = drain_for(&inside, Duration::from_millis(200));
    assert!(got.is_empty(), "the refused inbound packet got in: {got:?}");
    for (r, s) in remotes.iter().zip(&servers).take(9) {
        assert_eq!(udp_deliver(&inside, *r, s, b"again"), sa(POOL[0], 43000));
        assert_eq!(udp_deliver(s, sa(POOL[0], 43000), &inside, b"back"), *r);
    }
    for s in &servers[9..] {
        let got = drain_for(s, Duration::from_millis(100));
        assert!(
            got.is_empty(),
            "a refused session reached {:?}",
            s.local_addr()
        );
    }
    assert_eq!(
        f.t.napt_stat("sessions"),
        9,
        "the table grew past its limit"
    );
    wait_until(
        Duration::from_secs(15),
        "the 9 idle sessions to expire",
        || f.t.napt_stat("sessions") == 0,
    );
    for (r, s) in remotes.iter().zip(&servers).skip(9) {
        udp_deliver(&inside, *r, s, b"my turn");
    }
    assert_eq!(f.t.napt_stat("sessions"), 3);
    f.stop();
}
