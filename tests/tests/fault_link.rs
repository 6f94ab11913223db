//! Faults of the external interface (issue 6), under load, in network
//! namespaces (root): the interface going down and up, and a pool address
//! removed from it. Topology: `xnat_tests::napt_topo`; load: 32 UDP flows
//! to an echo server (`xnat_tests::load`) and one TCP connection.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use xnat_tests::daemon_topo::LongFlow;
use xnat_tests::fault_topo::FaultTopo;
use xnat_tests::load::UdpLoad;
use xnat_tests::napt_topo::{
    HOST_A, HOST_B, HOST_C, POOL, SRV1, SRV2, SRV3, sa, udp_bind, udp_deliver,
};
use xnat_tests::nft::IngressCounter;
use xnat_tests::topology::{Ingress, attached};
use xnat_tests::wait::{SOON, wait_until};

const POOL1: &str = "198.51.100.1";
const RECOVER: Duration = Duration::from_secs(20);

fn start_load(f: &FaultTopo, first_port: u16, server: SocketAddrV4) -> UdpLoad {
    let mut v: Vec<UdpSocket> = Vec::new();
    for i in 0..16 {
        v.push(udp_bind(&f.t.a, sa(HOST_A, first_port + i)));
    }
    for i in 0..8 {
        v.push(udp_bind(&f.t.b, sa(HOST_B, first_port + i)));
        v.push(udp_bind(&f.t.b, sa(HOST_C, first_port + i)));
    }
    let srv = udp_bind(&f.t.srv, server);
    UdpLoad::start(v, srv, server, &[POOL[0]], Duration::from_millis(10))
}

/// Waits until every flow has sent `rounds` more datagrams than in
/// `before`: the load has run into whatever state the path is in now.
fn wait_rounds(load: &UdpLoad, before: &xnat_tests::load::Seen, rounds: u64, what: &str) {
    wait_until(SOON, what, || {
        let s = load.seen();
        s.sent
            .iter()
            .zip(&before.sent)
            .all(|(n, b)| *n >= b + rounds)
    });
}

mod link_down_up_under_load {
    #[test]
    fn tc() {
        super::link_down_up_under_load("lnk", xnat_tests::topology::Ingress::Tc);
    }

    #[test]
    fn xdp() {
        super::link_down_up_under_load("lnk", xnat_tests::topology::Ingress::Xdp);
    }
}

/// Promise: the external interface going down and up again changes
/// nothing for xnat. The programs stay attached (TCX and XDP links belong
/// to the device, not to its state), the agent keeps running, the bindings
/// stay, and once the link and its routes are back (the kernel drops the
/// routes through a device that goes down; an admin or network manager
/// restores the default route, as the test does) every flow works again
/// with the same public endpoint, no mapping is made twice, and the TCP
/// connection survives.
fn link_down_up_under_load(tag: &str, mode: Ingress) {
    let mut f = FaultTopo::new(tag, mode);
    f.start(&["--pool", POOL1, "--internal", "10.0.0.0/8"]);
    let server = sa(SRV1, 7000);
    let load = start_load(&f, 41000, server);
    let mut tcp = LongFlow::open(&f.t.a, &f.t.srv, SocketAddr::V4(sa(SRV2, 8000)));
    tcp.check("before the link went down");
    load.wait_all_echo(&load.seen(), RECOVER, "every flow to work");
    let created = f.t.counter("napt_mappings_created");
    assert_eq!(created, 33, "32 UDP + 1 TCP mapping");

    for round in 0..2 {
        let ext = f.t.ext.clone();
        f.t.nat.ip(&["link", "set", &ext, "down"]);
        let down = load.seen();
        wait_rounds(&load, &down, 5, "the load to run against the down link");
        let a = attached(&f.t.nat, &ext);
        assert!(
            !a.tc.is_empty() && (mode == Ingress::Tc || a.xdp),
            "round {round}: programs gone while the link is down:\n{}",
            a.raw
        );
        assert!(
            f.agent().try_exit().is_none(),
            "round {round}: the agent exited while the link was down:\n{}",
            f.agent().stdout()
        );
        f.t.nat.ip(&["link", "set", &ext, "up"]);
        f.t.nat
            .ip(&["route", "replace", "default", "via", "192.0.2.2"]);
        let up = load.seen();
        load.wait_all_echo(&up, RECOVER, "every flow to work after link up");
        tcp.check(&format!("round {round}: after link up"));
    }
    assert!(
        f.agent().try_exit().is_none(),
        "the agent exited:\n{}",
        f.agent().stderr()
    );
    let seen = load.stop();
    seen.assert_consistent("link down and up under load", server);
    assert_eq!(
        f.t.counter("napt_mappings_created"),
        created,
        "mappings were made again: a flow lost its binding"
    );
    assert_eq!(f.t.napt_stat("mappings"), 33);
    drop(tcp);
    f.stop();
}

mod pool_address_removed {
    #[test]
    fn tc() {
        super::pool_address_removed("addr", xnat_tests::topology::Ingress::Tc);
    }
}

/// Promise: xnat does not follow the interface's addresses; the pool is
/// what it was configured with. Removing a pool address from the
/// interface does not stop translation with it: inbound packets to it are
/// translated before the stack looks at local addresses, exactly as for a
/// pool routed to the gateway but not assigned (README "Where public
/// addresses come from"), so existing flows keep working with their
/// public endpoint and new flows still get ports from it. Nothing is
/// mistranslated: no private source ever leaves the gateway, unsolicited
/// packets to the address reach no inside host (no longer the gateway's
/// own, they are routed like any transit packet), and re-adding the
/// address changes nothing either.
fn pool_address_removed(tag: &str, mode: Ingress) {
    let mut f = FaultTopo::new(tag, mode);
    f.start(&["--pool", POOL1, "--internal", "10.0.0.0/8"]);
    let leak = IngressCounter::new(&f.t.rtr, "leak", "eth0", &["ip", "saddr", "10.0.0.0/8"]);
    let in_a = IngressCounter::new(&f.t.a, "scan", "eth0", &["udp", "dport", "45001"]);
    let in_b = IngressCounter::new(&f.t.b, "scan", "eth0", &["udp", "dport", "45001"]);
    let server = sa(SRV1, 7000);
    let load = start_load(&f, 41000, server);
    load.wait_all_echo(&load.seen(), RECOVER, "every flow to work");

    let ext = f.t.ext.clone();
    f.t.nat
        .ip(&["addr", "del", &format!("{POOL1}/32"), "dev", &ext]);
    let removed = load.seen();
    load.wait_all_echo(&removed, RECOVER, "every flow to work without the address");

    // A new flow still gets a port of the removed address (its own port
    // unless a load flow holds it already), and replies reach it.
    let srv2 = udp_bind(&f.t.srv, sa(SRV3, 7100));
    let fresh = udp_bind(&f.t.a, sa(HOST_A, 45000));
    let public = udp_deliver(&fresh, sa(SRV3, 7100), &srv2, b"new flow");
    assert_eq!(*public.ip(), POOL[0], "new flow's public endpoint {public}");
    let from = udp_deliver(&srv2, public, &fresh, b"reply");
    assert_eq!(from, sa(SRV3, 7100));

    // Unsolicited packets to a port without a mapping: seen by the
    // ingress program (passed, not translated), delivered to no inside
    // host. TTL 4: the gateway now routes them back upstream, and the
    // router back to the gateway, until the TTL runs out.
    let passed0 = f.t.counter("passed_not_ours");
    let scanner = udp_bind(&f.t.srv, sa(SRV3, 9000));
    scanner.set_ttl(4).unwrap();
    for i in 0..100u32 {
        scanner
            .send_to(&i.to_be_bytes(), sa(POOL[0], 45001))
            .unwrap();
    }
    wait_until(
        SOON,
        "the gateway to pass the 100 unsolicited datagrams",
        || f.t.counter("passed_not_ours") >= passed0 + 100,
    );
    assert_eq!(
        in_a.packets() + in_b.packets(),
        0,
        "unsolicited reached inside"
    );

    f.t.nat
        .ip(&["addr", "add", &format!("{POOL1}/32"), "dev", &ext]);
    let readded = load.seen();
    load.wait_all_echo(&readded, RECOVER, "every flow to work after re-adding");
    let seen = load.stop();
    seen.assert_consistent("pool address removed and re-added", server);
    assert_eq!(leak.packets(), 0, "a private source left the gateway");
    assert_eq!(f.t.counter("napt_mappings_created"), 33);
    f.stop();
}
