//! `xnat trace` end to end (root): real packets through the attached
//! programs, reported live as the operator sees them — a UDP exchange
//! translated both ways, an unsolicited SYN dropped with its reason, one
//! trace at a time, and a killed trace switched off by the agent.

use serde_json::Value;
use xnat_tests::both_modes;
use xnat_tests::napt_topo::{
    HOST_A, NaptTopo, POOL, SRV1, napt_args, sa, tcp_connect_start, udp_bind, udp_deliver,
};
use xnat_tests::netns::{BgChild, xnat_bin};
use xnat_tests::topology::{Ingress, pin_dir};
use xnat_tests::wait::{SOON, wait_until};

both_modes!(translated_and_dropped_packets_are_reported, "trc");

/// Starts `xnat trace -i EXT ARGS` in the gateway's namespace and waits
/// until it says the programs report.
fn start_trace(t: &NaptTopo, args: &[&str]) -> BgChild {
    let bin = xnat_bin();
    let mut all = vec![bin.to_str().unwrap(), "trace", "-i", &t.ext];
    all.extend_from_slice(args);
    let mut child = t.nat.spawn(&all);
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
