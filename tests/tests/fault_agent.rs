//! Faults of the agent (issue 6), under load, in network namespaces (root):
//! SIGKILL of the agent while traffic flows, and `xnat detach` while
//! traffic flows. Topology: `xnat_tests::napt_topo`; the load is 32 UDP
//! flows from three inside addresses to an echo server plus one TCP
//! connection (`xnat_tests::load`, `daemon_topo::LongFlow`).

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use xnat_tests::agent::{EXIT_TIMEOUT, run_xnat};
use xnat_tests::daemon_topo::LongFlow;
use xnat_tests::fault_topo::FaultTopo;
use xnat_tests::load::UdpLoad;
use xnat_tests::napt_topo::{
    HOST_A, HOST_B, HOST_C, POOL, SRV1, SRV2, SRV3, sa, udp_bind, udp_deliver,
};
use xnat_tests::netns::describe;
use xnat_tests::topology::{Ingress, attached, pins_for};
use xnat_tests::wait::wait_until;

const POOL1: &str = "198.51.100.1";
/// How long every flow may take to show it works again after a fault.
const RECOVER: Duration = Duration::from_secs(15);

/// 32 UDP sockets: 16 on host A, 8 each on B's 10.0.0.3 and 10.0.0.4.
fn clients(f: &FaultTopo, first_port: u16) -> Vec<UdpSocket> {
    let mut v = Vec::new();
    for i in 0..16 {
        v.push(udp_bind(&f.t.a, sa(HOST_A, first_port + i)));
    }
    for i in 0..8 {
        v.push(udp_bind(&f.t.b, sa(HOST_B, first_port + i)));
        v.push(udp_bind(&f.t.b, sa(HOST_C, first_port + i)));
    }
    v
}

/// The echo server the load talks to, and the load itself.
fn start_load(f: &FaultTopo, first_port: u16, server: SocketAddrV4) -> UdpLoad {
    let srv = udp_bind(&f.t.srv, server);
    UdpLoad::start(
        clients(f, first_port),
        srv,
        server,
        &[POOL[0]],
        Duration::from_millis(10),
    )
}

mod agent_sigkill_under_load {
    use super::*;

    #[test]
    fn tc() {
        super::agent_sigkill_under_load("kill", Ingress::Tc);
    }

    #[test]
    fn xdp() {
        super::agent_sigkill_under_load("kill", Ingress::Xdp);
    }
}

/// Promise: SIGKILL of the agent stops nothing. While no agent runs, the
/// pinned programs keep translating every flow both ways (the verbs keep
/// working on the pins); a restarted `xnat attach` adopts the pinned state
/// and no flow is lost: every UDP flow keeps its one public endpoint
/// through it all, no mapping is made twice, the counters continue from
/// where they were, the TCP connection survives; expiry pauses while no
/// agent runs (an idle binding outlives its timeout) and the new agent's
/// expiry removes the idle bindings.
fn agent_sigkill_under_load(tag: &str, mode: Ingress) {
    let mut f = FaultTopo::new(tag, mode);
    let args = [
        "--pool",
        POOL1,
        "--internal",
        "10.0.0.0/8",
        "--timeout",
        "udp=3",
    ];
    f.start(&args);
    let server = sa(SRV1, 7000);
    let load = start_load(&f, 41000, server);
    let mut tcp = LongFlow::open(&f.t.a, &f.t.srv, SocketAddr::V4(sa(SRV2, 8000)));
    tcp.check("before the kill");
    // An idle binding: its expiry must wait for an agent.
    let idle_srv = udp_bind(&f.t.srv, sa(SRV3, 7300));
    let idle = udp_bind(&f.t.a, sa(HOST_A, 41950));
    udp_deliver(&idle, sa(SRV3, 7300), &idle_srv, b"then idle");
    let idle_flow = |f: &FaultTopo| {
        f.t.flows(&["--inside", "10.0.0.2"])
            .into_iter()
            .find(|fl| fl.inside == sa(HOST_A, 41950))
    };
    load.wait_all_echo(&load.seen(), RECOVER, "every flow to work");
    assert_eq!(
        f.t.napt_stat("mappings"),
        34,
        "32 + 1 idle UDP, 1 TCP mapping"
    );
    let created = f.t.counter("napt_mappings_created");
    assert_eq!(created, 34);
    let out0 = f.t.counter("egress_translated_packets");

    f.kill9();
    // The programs and the pins outlive the agent.
    let a = attached(&f.t.nat, &f.t.ext);
    assert!(!a.tc.is_empty(), "programs gone after SIGKILL:\n{}", a.raw);
    assert!(!pins_for(&f.t.ext).is_empty(), "pins gone after SIGKILL");
    let dead = load.seen();
    load.wait_all_echo(&dead, RECOVER, "every flow to work with no agent");
    tcp.check("with no agent");
    // The verbs read the pins: the counters keep growing without an agent.
    let out1 = f.t.counter("egress_translated_packets");
    assert!(
        out1 > out0,
        "egress counter stuck at {out0} without an agent"
    );

    // Expiry pauses while no agent runs: the idle binding outlives its
    // 3 s timeout (polled on its idle time, which the data plane keeps).
    wait_until(
        Duration::from_secs(20),
        "the idle binding to be idle well past its timeout",
        || {
            idle_flow(&f)
                .expect("the idle binding expired with no agent running")
                .idle_s
                >= 5
        },
    );

    let ready = f.start(&args);
    assert!(
        ready.contains("adopted the running attachment"),
        "restart did not adopt: {ready}"
    );
    wait_until(
        Duration::from_secs(20),
        "the restarted agent to expire the idle binding",
        || idle_flow(&f).is_none(),
    );
    let back = load.seen();
    load.wait_all_echo(&back, RECOVER, "every flow to work after the restart");
    tcp.check("after the restart");
    assert!(
        f.t.counter("egress_translated_packets") >= out1,
        "counters went back after adoption"
    );

    let seen = load.stop();
    seen.assert_consistent("SIGKILL and restart under load", server);
    assert_eq!(
        f.t.counter("napt_mappings_created"),
        created,
        "mappings were made again: a flow lost its binding"
    );
    // Expiry runs again in the new agent: the idle UDP bindings go (the
    // TCP connection stays established).
    wait_until(
        Duration::from_secs(20),
        "the restarted agent to expire the 32 idle UDP mappings",
        || f.t.napt_stat("mappings") == 1,
    );
    tcp.check("after expiry");
    drop(tcp);
    f.stop();
}

mod detach_under_load {
    #[test]
    fn tc() {
        super::detach_under_load("dtch", xnat_tests::topology::Ingress::Tc);
    }
}

/// Promise: `xnat detach` while traffic flows removes everything at once —
/// the agent notices and exits 0, no program stays on EXT, no pin and no
/// /run/xnat file stays — and traffic is no longer translated (the server
/// now sees the private source) without anything failing; a new attach
/// starts from a clean slate (nothing adopted, no flows, zero counters)
/// and translates the same traffic again.
fn detach_under_load(tag: &str, mode: Ingress) {
    let mut f = FaultTopo::new(tag, mode);
    let args = ["--pool", POOL1, "--internal", "10.0.0.0/8"];
    f.start(&args);
    let server = sa(SRV1, 7000);
    let load = start_load(&f, 42000, server);
    load.wait_all_echo(&load.seen(), RECOVER, "every flow to work");

    let (code, _, err) = run_xnat(&f.t.nat, &["detach", &f.t.ext]);
    assert_eq!(code, 0, "detach under load failed: {err}");
    let mut agent = f.take_agent();
    let st = agent.wait_exit(EXIT_TIMEOUT);
    assert!(
        st.success() && agent.stdout().contains("was detached by another command"),
        "agent after detach ({}):\nstdout: {}\nstderr: {}",
        describe(st),
        agent.stdout(),
        agent.stderr()
    );
    f.assert_clean("after detach under load");

    // Untranslated now: a fresh datagram reaches the server with its
    // private source (the router forwards it; only replies cannot return).
    let probe_srv = udp_bind(&f.t.srv, sa(SRV3, 9000));
    let probe = udp_bind(&f.t.a, sa(HOST_A, 42100));
    let from = udp_deliver(&probe, sa(SRV3, 9000), &probe_srv, b"plain");
    assert_eq!(from, sa(HOST_A, 42100), "translated after detach");
    let seen = load.stop();
    assert!(
        seen.anomalies
            .iter()
            .all(|a| a.contains("arrived from 10.0.0.")),
        "after detach only untranslated datagrams may look odd:\n{}",
        seen.anomalies.join("\n")
    );
    assert!(
        seen.public
            .iter()
            .all(|p| p.iter().filter(|e| *e.ip() == POOL[0]).count() == 1),
        "a flow had other than one public endpoint before the detach: {:?}",
        seen.public
    );

    // A clean slate: a new attach is fresh, and translates again.
    let ready = f.start(&args);
    assert!(
        !ready.contains("adopted"),
        "attach after detach adopted something: {ready}"
    );
    assert_eq!(f.t.counter("napt_mappings_created"), 0, "stale counters");
    assert!(f.t.flows(&[]).is_empty(), "stale flows after re-attach");
    let load = start_load(&f, 43000, server);
    load.wait_all_echo(&load.seen(), RECOVER, "every flow to work after re-attach");
    load.stop()
        .assert_consistent("after detach and re-attach", server);
    f.stop();
}
