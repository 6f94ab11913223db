//! End-to-end tests of static 1:1 NAT in network namespaces (root): real
//! TCP/UDP sockets, ping, traceroute and tcpdump through `xnat attach` on the
//! gateway's external veth, each in both ingress modes (XDP and TC).
//!
//! Topology and addresses: see `xnat_tests::topology`. The static mapping at
//! attach is 10.0.0.2 = 203.0.113.1.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nat_common::stats::Counter;
use xnat_tests::both_modes;
use xnat_tests::netns::{Netns, describe};
use xnat_tests::topology::{
    CLI, CLI2, GW_INT, Ingress, PUB1, PUB2, RTR_EXT, SRV, STATIC_MAP, Topology, attached,
    error_lines, pins_for,
};
use xnat_tests::traffic::{recv_within, sa, tcp_echo, udp_exchange};
use xnat_tests::wait::{SOON, wait_until};

both_modes!(tcp_both_ways, "tcp");
both_modes!(udp_both_ways, "udp");
both_modes!(ping_both_ways, "png");
both_modes!(traceroute_through_router, "trc");
both_modes!(map_add_del_while_traffic_runs, "map");
both_modes!(detach_restores_plain_routing, "det");
both_modes!(bad_input_is_refused, "bad");

fn ip(a: std::net::SocketAddr) -> IpAddr {
    a.ip()
}

/// Outbound and inbound TCP with a 256 KiB echo (many segments each way).
fn tcp_both_ways(tag: &str, mode: Ingress) {
    let mut t = Topology::with_static_nat(tag, mode);

    let out = tcp_echo(&t.cli, &t.srv, sa(SRV, 5001), sa(SRV, 5001), 256 * 1024);
    assert_eq!(
        ip(out.server_saw_peer),
        IpAddr::from(PUB1),
        "outbound: server's view of the client"
    );
    assert_eq!(ip(out.client_local), IpAddr::from(CLI));
    assert_eq!(ip(out.client_saw_peer), IpAddr::from(SRV));

    let inb = tcp_echo(&t.srv, &t.cli, sa(CLI, 5002), sa(PUB1, 5002), 256 * 1024);
    assert_eq!(
        ip(inb.server_saw_peer),
        IpAddr::from(SRV),
        "inbound: inside server's view of the client"
    );
    assert_eq!(ip(inb.client_saw_peer), IpAddr::from(PUB1));

    t.stop_agent();
}

/// Outbound and inbound UDP request/response; sources checked on both ends.
fn udp_both_ways(tag: &str, mode: Ingress) {
    let mut t = Topology::with_static_nat(tag, mode);

    let out = udp_exchange(
        &t.cli,
        &t.srv,
        sa(CLI, 0),
        sa(SRV, 5003),
        sa(SRV, 5003),
        1200,
    );
    assert_eq!(
        ip(out.server_saw_src),
        IpAddr::from(PUB1),
        "outbound: server's view of the source"
    );
    assert_eq!(ip(out.client_saw_src), IpAddr::from(SRV));

    let inb = udp_exchange(
        &t.srv,
        &t.cli,
        sa(SRV, 0),
        sa(CLI, 5004),
        sa(PUB1, 5004),
        1200,
    );
    assert_eq!(
        ip(inb.server_saw_src),
        IpAddr::from(SRV),
        "inbound: inside server's view of the source"
    );
    assert_eq!(
        ip(inb.client_saw_src),
        IpAddr::from(PUB1),
        "inbound: reply must come from the public address"
    );

    t.stop_agent();
}

/// Runs `ping -c 3` in `from` towards `to` and panics unless all 3 answers came.
fn ping3(ns: &Netns, to: Ipv4Addr) {
    let to = to.to_string();
    let out = ns.run(
        Duration::from_secs(10),
        &["ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", &to],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("3 packets transmitted, 3 received"),
        "ping from {} to {to} failed ({}):\n{stdout}{}",
        ns.name(),
        describe(out.status),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Echo requests captured by tcpdump: the (src, dst) pairs of its lines.
fn echo_requests(dump: &str) -> Vec<(String, String)> {
    dump.lines()
        .filter(|l| l.contains("ICMP echo request"))
        .filter_map(|l| {
            let mut w = l.split_whitespace().skip_while(|w| *w != "IP");
            w.next()?;
            let src = w.next()?.to_string();
            w.next()?; // ">"
            let dst = w.next()?.trim_end_matches(':').to_string();
            Some((src, dst))
        })
        .collect()
}

/// ping both ways; tcpdump on the far side sees the translated addresses.
fn ping_both_ways(tag: &str, mode: Ingress) {
    let mut t = Topology::with_static_nat(tag, mode);
    let echo = "icmp[icmptype] == icmp-echo";

    let mut dump = Topology::tcpdump(&t.srv, "eth0", 3, echo);
    ping3(&t.cli, SRV);
    let st = dump.wait_exit(Duration::from_secs(5));
    assert!(st.success(), "tcpdump in srv: {}", dump.stderr());
    let seen = echo_requests(&dump.stdout());
    let want = (PUB1.to_string(), SRV.to_string());
    assert!(
        seen.len() == 3 && seen.iter().all(|p| *p == want),
        "srv should see 3 echo requests {want:?}, tcpdump saw:\n{}",
        dump.stdout()
    );

    let mut dump = Topology::tcpdump(&t.cli, "eth0", 3, echo);
    ping3(&t.srv, PUB1);
    let st = dump.wait_exit(Duration::from_secs(5));
    assert!(st.success(), "tcpdump in cli: {}", dump.stderr());
    let seen = echo_requests(&dump.stdout());
    let want = (SRV.to_string(), CLI.to_string());
    assert!(
        seen.len() == 3 && seen.iter().all(|p| *p == want),
        "cli should see 3 echo requests {want:?}, tcpdump saw:\n{}",
        dump.stdout()
    );

    // 3 requests + 3 replies each way.
    let egress = t.counter(Counter::EgressTranslated.name());
    let ingress = t.counter(Counter::IngressTranslated.name());
    assert!(
        egress >= 6 && ingress >= 6,
        "xnat stats: egress {egress}, ingress {ingress}, want ≥ 6 each"
    );

    t.stop_agent();
}

/// Hop addresses of traceroute output (`None` for `*`).
fn hops(out: &str) -> Vec<Option<String>> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.next()?.parse::<u32>().ok()?;
            let h = w.next()?;
            Some((h != "*").then(|| h.to_string()))
        })
        .collect()
}

/// traceroute (UDP and ICMP) from cli: hop 2's time-exceeded and the final
/// port-unreachable reach the client only if xnat translates ICMP errors,
/// embedded header included.
fn traceroute_through_router(tag: &str, mode: Ingress) {
    let mut t = Topology::with_static_nat(tag, mode);
    let want: Vec<Option<String>> = [GW_INT, RTR_EXT, SRV]
        .iter()
        .map(|a| Some(a.to_string()))
        .collect();
    let srv = SRV.to_string();
    for extra in [None, Some("-I")] {
        let mut args = vec!["traceroute", "-n", "-q", "1", "-w", "1", "-m", "5"];
        args.extend(extra);
        args.push(&srv);
        let out = t.cli.run(Duration::from_secs(30), &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && hops(&stdout) == want,
            "`{}` ({}): want hops {want:?}, got {:?}:\n{stdout}{}",
            args.join(" "),
            describe(out.status),
            hops(&stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let icmp_err = t.counter(Counter::IcmpErrorsTranslated.name());
    // Time exceeded from rtr and port unreachable from srv, at least.
    assert!(
        icmp_err >= 2,
        "xnat stats: icmp_errors_translated = {icmp_err}, want ≥ 2"
    );

    t.stop_agent();
}

/// `map add` / `map del` for 10.0.0.3 while it sends a datagram every ~100 ms.
fn map_add_del_while_traffic_runs(tag: &str, mode: Ingress) {
    let mut t = Topology::with_static_nat(tag, mode);
    let ext = t.ext.clone();

    let server = t
        .srv
        .in_ns(|| std::net::UdpSocket::bind(sa(SRV, 5005)))
        .expect("bind srv UDP");
    let sender = t
        .cli
        .in_ns(|| std::net::UdpSocket::bind(sa(CLI2, 0)))
        .expect("bind cli UDP on 10.0.0.3");
    let stop = AtomicBool::new(false);
    let seen: Arc<Mutex<Vec<IpAddr>>> = Arc::default();
    let last = || seen.lock().unwrap().last().copied();

    std::thread::scope(|sc| {
        // Stop the helper threads even if an assertion below panics.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);

        sc.spawn(|| {
            // Bounded: at most 60 s of traffic.
            for i in 0u32..600 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                sender
                    .send_to(&i.to_be_bytes(), sa(SRV, 5005))
                    .expect("send_to");
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        sc.spawn(|| {
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Some((_, from)) = recv_within(&server, &mut buf, Duration::from_millis(200))
                {
                    seen.lock().unwrap().push(from.ip());
                }
            }
        });

        let wait_src = |src: Ipv4Addr, what: &str| {
            wait_until(SOON, what, || last() == Some(IpAddr::from(src)));
        };
        wait_src(
            CLI2,
            "srv to receive from unmapped 10.0.0.3 (plain routing)",
        );

        t.xnat_ok(&[
            "map",
            "add",
            &CLI2.to_string(),
            &PUB2.to_string(),
            "-i",
            &ext,
        ]);
        wait_src(
            PUB2,
            "srv to see 203.0.113.2 after `map add 10.0.0.3 203.0.113.2`",
        );
        assert_eq!(t.map_list(), vec![(CLI, PUB1), (CLI2, PUB2)]);

        t.xnat_ok(&["map", "del", &CLI2.to_string(), "-i", &ext]);
        wait_src(CLI2, "srv to see 10.0.0.3 again after `map del 10.0.0.3`");
        assert_eq!(t.map_list(), vec![(CLI, PUB1)]);
    });

    // The attach-time mapping is untouched by all this.
    let u = udp_exchange(
        &t.cli,
        &t.srv,
        sa(CLI, 0),
        sa(SRV, 5006),
        sa(SRV, 5006),
        100,
    );
    assert_eq!(ip(u.server_saw_src), IpAddr::from(PUB1));

    t.stop_agent();
}

/// `xnat detach EXT` from another process ends the agent (exit 0), removes
/// programs and pins, and plain routing works again.
fn detach_restores_plain_routing(tag: &str, mode: Ingress) {
    let mut t = Topology::with_static_nat(tag, mode);
    let before = tcp_echo(&t.cli, &t.srv, sa(SRV, 5007), sa(SRV, 5007), 1000);
    assert_eq!(ip(before.server_saw_peer), IpAddr::from(PUB1));

    let ext = t.ext.clone();
    t.xnat_ok(&["detach", &ext]);
    let mut agent = t.take_agent();
    let st = agent.wait_exit(xnat_tests::agent::EXIT_TIMEOUT);
    assert!(
        st.success(),
        "agent after `xnat detach`: {}\nstderr: {}",
        describe(st),
        agent.stderr()
    );
    t.assert_clean("after `xnat detach`");

    let after = tcp_echo(&t.cli, &t.srv, sa(SRV, 5008), sa(SRV, 5008), 1000);
    assert_eq!(
        ip(after.server_saw_peer),
        IpAddr::from(CLI),
        "after detach: no translation"
    );
}

/// Runs a command expected to fail quickly; returns its single error line.
fn expect_error(what: &str, out: std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "{what}: succeeded but must fail\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines = error_lines(&out.stderr);
    assert!(
        lines.len() == 1,
        "{what}: want a one-line error on stderr, got {} lines:\n{}",
        lines.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{what}: refused with: {}", lines[0]);
    lines.into_iter().next().unwrap()
}

/// A bad `xnat attach` must exit non-zero quickly and leave nothing behind.
fn bad_attach(t: &Topology, iface: &str, args: &[&str], mention: &str) {
    let what = format!(
        "`xnat attach {iface} --ingress {} {}`",
        t.mode.as_str(),
        args.join(" ")
    );
    let mut child = t.spawn_attach(iface, args);
    let Some(status) = child.wait_exit_within(Duration::from_secs(10)) else {
        panic!(
            "{what}: still running after 10 s, i.e. it accepted bad input\nstdout: {}",
            child.stdout()
        );
    };
    let out = std::process::Output {
        status,
        stdout: child.stdout().into_bytes(),
        stderr: child.stderr().into_bytes(),
    };
    let line = expect_error(&what, out);
    assert!(
        line.contains(mention),
        "{what}: error should mention {mention:?}: {line}"
    );
}

/// Invalid addresses, duplicate mappings, a missing interface and a second
/// attach are refused with a one-line error and leave nothing attached or
/// pinned; so are conflicting `map add`s while attached.
fn bad_input_is_refused(tag: &str, mode: Ingress) {
    let mut t = Topology::new(tag, mode);
    let ext = t.ext.clone();

    bad_attach(&t, &ext, &["--map", "10.0.0.300=1.2.3.4"], "10.0.0.300");
    t.assert_clean("after attach with an invalid address");

    bad_attach(
        &t,
        &ext,
        &["--map", STATIC_MAP, "--map", "10.0.0.3=203.0.113.1"],
        "203.0.113.1",
    );
    t.assert_clean("after attach with a public address mapped twice");

    bad_attach(
        &t,
        &ext,
        &["--map", STATIC_MAP, "--map", "10.0.0.2=203.0.113.2"],
        "10.0.0.2",
    );
    t.assert_clean("after attach with a private address mapped twice");

    let nosuch = "nosuch0";
    bad_attach(&t, nosuch, &["--map", STATIC_MAP], nosuch);
    t.assert_clean("after attach to a missing interface");
    assert!(
        pins_for(nosuch).is_empty(),
        "pins left for {nosuch}: {:?}",
        pins_for(nosuch)
    );

    // A second attach on an attached interface changes nothing.
    t.attach(&["--map", STATIC_MAP]);
    let pins_before = t.pins();
    let att_before = t.attached();
    bad_attach(&t, &ext, &["--map", "10.0.0.3=203.0.113.2"], &ext);
    assert!(
        t.agent().try_exit().is_none(),
        "first agent died after a second attach"
    );
    assert_eq!(t.pins(), pins_before, "second attach changed the pins");
    let att_after = attached(&t.nat, &ext);
    assert_eq!(
        (att_before.xdp, att_before.tc.len()),
        (att_after.xdp, att_after.tc.len()),
        "second attach changed the attached programs:\nbefore:\n{}\nafter:\n{}",
        att_before.raw,
        att_after.raw
    );
    assert_eq!(t.map_list(), vec![(CLI, PUB1)]);

    // Conflicting or invalid `map add` while attached.
    let cases: [(&[&str], &str); 3] = [
        (&["10.0.0.2", "203.0.113.2"], "10.0.0.2"),
        (&["10.0.0.3", "203.0.113.1"], "203.0.113.1"),
        (&["10.0.0.300", "203.0.113.2"], "10.0.0.300"),
    ];
    for (addrs, mention) in cases {
        let mut args = vec!["map", "add"];
        args.extend_from_slice(addrs);
        args.extend_from_slice(&["-i", &ext]);
        let what = format!("`xnat {}`", args.join(" "));
        let line = expect_error(&what, t.xnat(&args));
        assert!(
            line.contains(mention),
            "{what}: error should mention {mention:?}: {line}"
        );
    }
    assert_eq!(
        t.map_list(),
        vec![(CLI, PUB1)],
        "map changed by refused `map add`s"
    );

    // Translation still works after all the refused commands.
    let u = udp_exchange(
        &t.cli,
        &t.srv,
        sa(CLI, 0),
        sa(SRV, 5009),
        sa(SRV, 5009),
        100,
    );
    assert_eq!(ip(u.server_saw_src), IpAddr::from(PUB1));

    t.stop_agent();
}
