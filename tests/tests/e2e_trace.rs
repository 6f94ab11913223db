//! `xnat trace` end to end (root): real packets through the attached
//! programs, reported live as the operator sees them — a UDP exchange
//! translated both ways, an unsolicited SYN dropped with its reason, one
//! trace at a time, and a killed trace switched off by the agent.

use serde_json::Value;
use xnat_tests::both_modes;
use xnat_tests::napt_topo::{
    HOST_A, NaptTopo, POOL, SRV1, napt_args, sa, tcp_connect_start, udp_bind, udp_deliver,
};
use xnat_tests::nat64_topo::{CLIENT6, Nat64Topo, SRV, udp_exchange};
use xnat_tests::netns::{BgChild, Netns, xnat_bin};
use xnat_tests::topology::{Ingress, pin_dir};
use xnat_tests::wait::{SOON, wait_until};

both_modes!(translated_and_dropped_packets_are_reported, "trc");
both_modes!(nat64_packets_are_reported_with_their_ipv6_side, "t64");

/// Starts `xnat trace -i EXT ARGS` in the gateway's namespace and waits
/// until it says the programs report.
fn start_trace(t: &NaptTopo, args: &[&str]) -> BgChild {
    start_trace_in(&t.nat, &t.ext, args)
}

fn start_trace_in(ns: &Netns, ext: &str, args: &[&str]) -> BgChild {
    let bin = xnat_bin();
    let mut all = vec![bin.to_str().unwrap(), "trace", "-i", ext];
    all.extend_from_slice(args);
    let mut child = ns.spawn(&all);
    wait_until(SOON, "`xnat trace` to start", || {
        assert!(
            child.try_exit().is_none(),
            "xnat trace exited early: {}",
            child.stderr()
        );
        child.stderr().contains("xnat: tracing")
    });
    child
}

/// Waits for a trace started with `--count` to end; its JSON lines.
fn records(mut child: BgChild) -> Vec<Value> {
    let st = child.wait_exit(SOON);
    assert!(st.success(), "xnat trace: {}", child.stderr());
    parse(&child.stdout())
}

/// The JSON records in `stdout`, one per line.
fn parse(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The pid in TRACE_FILTER (0: tracing off).
fn tracer(dir: &std::path::Path) -> u32 {
    nat_userspace::tables::Tables::at(dir)
        .trace_filter()
        .expect("TRACE_FILTER")
        .get(&0, 0)
        .expect("reading TRACE_FILTER")
        .tracer
}

fn translated_and_dropped_packets_are_reported(tag: &str, mode: Ingress) {
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&napt_args(&[]));

    // 1. A UDP exchange, traced by the inside host's address: the reply
    // matches too (its destination is the host only after translation).
    // On a loaded machine `udp_deliver` may send a datagram again, so the
    // trace runs until the reply is reported and is then stopped (Ctrl-C).
    let mut trace = start_trace(
        &t,
        &[
            "--host", "10.0.0.2", "--proto", "udp", "--port", "40500", "--json",
        ],
    );
    // One trace at a time.
    let second = t.xnat(&["trace", "--count", "1"]);
    assert_eq!(
        second.status.code(),
        Some(1),
        "a second trace must be refused"
    );
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let inside = udp_bind(&t.a, sa(HOST_A, 40500));
    let server = udp_bind(&t.srv, sa(SRV1, 7500));
    let public = udp_deliver(&inside, sa(SRV1, 7500), &server, b"traced out");
    udp_deliver(&server, public, &inside, b"traced back");
    let want_in = if mode == Ingress::Xdp {
        "ingress_xdp"
    } else {
        "ingress_tc"
    };
    wait_until(SOON, "the trace to report the reply", || {
        // (The last line may still be half written.)
        trace
            .stdout()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|r| r["program"] == want_in)
    });
    trace.signal(libc::SIGINT);
    let got = records(trace);
    let outs: Vec<&Value> = got.iter().filter(|r| r["program"] == "egress_tc").collect();
    let backs: Vec<&Value> = got.iter().filter(|r| r["program"] == want_in).collect();
    assert_eq!(
        outs.len() + backs.len(),
        got.len(),
        "records of other programs: {got:#?}"
    );
    let (out, back) = (outs[0], backs[0]);
    assert_eq!(out["verdict"], "translated", "{out}");
    assert_eq!(out["proto"], "udp");
    assert_eq!(out["before"]["src"], "10.0.0.2:40500", "{out}");
    assert_eq!(out["after"]["src"], public.to_string(), "{out}");
    assert_eq!(out["after"]["dst"], "203.0.113.10:7500", "{out}");
    let reasons = out["reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r == "napt_mappings_created"),
        "{out}"
    );
    // A datagram sent again is the same translation, on the same mapping.
    for again in outs.iter().chain(&backs).skip(1) {
        assert_eq!(again["verdict"], "translated", "{again}");
    }
    for again in &outs[1..] {
        assert_eq!(again["after"], out["after"], "{again}");
        let reasons = again["reasons"].as_array().unwrap();
        assert!(
            !reasons.iter().any(|r| r == "napt_mappings_created"),
            "a second mapping for one socket: {again}"
        );
    }
    assert_eq!(back["verdict"], "translated", "{back}");
    assert_eq!(back["before"]["dst"], public.to_string(), "{back}");
    assert_eq!(back["after"]["dst"], "10.0.0.2:40500", "{back}");

    // 2. An unsolicited SYN to a pool port: dropped, and why.
    let trace = start_trace(
        &t,
        &[
            "--port", "41000", "--proto", "tcp", "--count", "1", "--json",
        ],
    );
    let _syn = tcp_connect_start(&t.srv, sa(SRV1, 7600), sa(POOL[0], 41000));
    let got = records(trace);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["verdict"], "dropped", "{}", got[0]);
    assert_eq!(got[0]["before"]["dst"], "198.51.100.1:41000", "{}", got[0]);
    assert!(
        got[0]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "drop_unsolicited_syn"),
        "{}",
        got[0]
    );

    // A trace that ends (its --count reached) switched the programs off.
    let dir = pin_dir(&t.ext);
    assert_eq!(tracer(&dir), 0, "a finished trace left tracing on");

    // 3. A trace killed outright leaves the programs reporting to nobody
    // until the agent notices (a tick).
    let mut killed = start_trace(&t, &[]);
    killed.signal(libc::SIGKILL);
    let _ = killed.wait_exit(SOON);
    wait_until(SOON, "the agent to switch off a dead trace", || {
        tracer(&dir) == 0
    });
}

/// NAT64 packets in a trace (TC: `xnat_nat64_out_nat44_tc`; with XDP
/// ingress, also `--fast-path --inside-hook xdp`: `xnat_nat64_out_xdp`),
/// filtered by the IPv6 host: outbound the host's IPv6 packet before
/// (its address, the server's under the prefix) and the IPv4 one after;
/// inbound the IPv4 packet before and the IPv6 one after. An IPv6 host
/// without a stand-in is refused as a filter, with the reason.
fn nat64_packets_are_reported_with_their_ipv6_side(tag: &str, mode: Ingress) {
    use std::net::{IpAddr, SocketAddr};
    let (more, out_prog): (&[&str], &str) = match mode {
        Ingress::Tc => (&[], "nat64_out_tc"),
        Ingress::Xdp => (
            &[
                "--fast-path",
                "--inside-hook",
                "xdp",
                "--xdp-redirect",
                "EXT",
            ],
            "nat64_out_xdp",
        ),
    };
    let mut noop = None;
    let t = Nat64Topo::with_setup(tag, mode, "64:ff9b::/96", more, |net| {
        if mode == Ingress::Xdp {
            noop = Some(xnat_tests::fastpath_topo::NoopXdp::attach(
                net.ns("rtr"),
                "eth0",
            ));
            net.ns("c6").run_ok(&["ethtool", "-K", "eth0", "tx", "off"]);
        }
    });
    let _noop = noop;
    let gw = t.ns("gw");
    let ext = t.net.ext.clone();
    let host = CLIENT6.to_string();
    let refused = gw.run(
        std::time::Duration::from_secs(10),
        &[
            xnat_bin().to_str().unwrap(),
            "trace",
            "-i",
            &ext,
            "--host",
            &host,
        ],
    );
    assert!(!refused.status.success(), "a host without a stand-in");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no NAT64 binding"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let (c6, srv) = (t.ns("c6"), t.ns("srv"));
    let server6 = t.synth(SRV);
    let sa = |a: IpAddr, p: u16| SocketAddr::new(a, p);
    let exchange = || {
        udp_exchange(
            c6,
            srv,
            sa(IpAddr::V6(CLIENT6), 40_100),
            sa(IpAddr::V4(SRV), 9100),
            sa(IpAddr::V6(server6), 9100),
        )
    };
    // The first exchange gives the host its stand-in (and in XDP mode
    // makes the flow established: TC takes a new one).
    let (public, _) = exchange();
    let trace = start_trace_in(
        gw,
        &ext,
        &["--host", &host, "--proto", "udp", "--json", "--count", "2"],
    );
    exchange();
    let got = records(trace);
    let want_in = if mode == Ingress::Xdp {
        "ingress_xdp"
    } else {
        "ingress_tc"
    };
    let out = got
        .iter()
        .find(|r| r["program"] == out_prog)
        .unwrap_or_else(|| panic!("no {out_prog} record: {got:#?}"));
    let back = got
        .iter()
        .find(|r| r["program"] == want_in)
        .unwrap_or_else(|| panic!("no {want_in} record: {got:#?}"));
    let host_ep = format!("[{CLIENT6}]:40100");
    let server_ep = format!("[{server6}]:9100");
    assert_eq!(out["verdict"], "translated", "{out}");
    assert_eq!(out["before"]["src"], host_ep, "{out}");
    assert_eq!(out["before"]["dst"], server_ep, "{out}");
    assert_eq!(out["after"]["src"], public.to_string(), "{out}");
    assert_eq!(out["after"]["dst"], format!("{SRV}:9100"), "{out}");
    assert_eq!(back["verdict"], "translated", "{back}");
    assert_eq!(back["before"]["src"], format!("{SRV}:9100"), "{back}");
    assert_eq!(back["before"]["dst"], public.to_string(), "{back}");
    assert_eq!(back["after"]["src"], server_ep, "{back}");
    assert_eq!(back["after"]["dst"], host_ep, "{back}");
}
