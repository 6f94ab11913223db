//! End-to-end tests of the fast path (`xnat attach ... --fast-path`) in
//! network namespaces (root), each in both ingress modes (XDP and TC):
//! established flows are forwarded in BPF (FIB lookup + redirect) both
//! ways, and everything the fast path does not handle falls back to the
//! normal path and stays correct.
//!
//! Topology and addresses: see `xnat_tests::fastpath_topo` (10.0.0.2 is
//! statically mapped to 203.0.113.1, 10.0.0.3 is masqueraded behind the
//! pool 203.0.113.2, `--inside int0`). That the fast path was really used
//! is read from `xnat stats`: `fast_path_inbound` / `fast_path_outbound`
//! count the packets it forwarded, `ingress_translated_packets` /
//! `egress_translated_packets` every translation (fast path or not), so
//! "nearly all translated packets took the fast path" is a comparison of
//! the two within one test. Counting program runs rather than wire
//! packets keeps this exact with GSO/GRO super-packets too.
//!
//! Two scenarios go beyond the fast-path topology: an inside *bridge*
//! (the NAPT topology, `xnat_tests::napt_topo`) and two inside interfaces
//! with traffic between them.
//!
//! XDP mode: the inbound fast path redirects only to devices in
//! `XDP_TARGETS`, which the agent fills with the physical NICs among the
//! `--inside` interfaces — never a veth or a bridge, because the kernel
//! silently drops an XDP redirect into a bridge or into a veth whose peer
//! has no XDP program. Every inside interface here is virtual, so in XDP
//! mode inbound translated packets take the stack (`fast_path_inbound`
//! stays exactly 0) while the outbound fast path (TC on the inside
//! interface) works as in TC mode. No XDP program is attached to any
//! inside host: the XDP-mode tests show that traffic works without one.
//! One XDP-only test adds the inside veth to `XDP_TARGETS` by hand, with
//! `xnat_noop_xdp` on its peer, to run the XDP redirect end to end. The
//! outside peer of EXT sends complete checksums (tx checksum offload off,
//! DESIGN §2).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use xnat_tests::both_modes;
use xnat_tests::fastpath_topo::{
    CLI, CLI2, Exchange, FastTopo, FpCounters, GW_EXT, GW_INT, NoopXdp, POOL, PUB1, RTR_EXT, SRV,
    UdpPair, ifindex, tcp_bulk,
};
use xnat_tests::napt_topo::{hops, tcp_listen};
use xnat_tests::netns::{Netns, describe};
use xnat_tests::topology::Ingress;
use xnat_tests::traffic::{accept_within, sa};

both_modes!(bulk_tcp_and_udp_take_the_fast_path, "blk");
both_modes!(first_packet_of_a_new_flow_takes_the_normal_path, "new");
both_modes!(icmp_echo_and_traceroute, "icmp");
both_modes!(fragmented_udp_takes_the_normal_path, "frag");
both_modes!(unresolved_neighbour_falls_back, "ngh");
both_modes!(route_change_reaches_the_fast_path, "rt");
both_modes!(traffic_to_the_gateway_itself_is_untouched, "gw");
both_modes!(fast_path_off_and_on_give_the_same_results, "cmp");
both_modes!(agent_fills_the_fast_path_maps, "maps");
both_modes!(inside_to_inside_is_not_translated, "ii");

const MIB: usize = 1024 * 1024;

/// Panics unless nearly every translated packet took the fast path: `fast`
/// out of `all` translated, with at most `slack` that did not (first
/// packets of new flows, which the test knows about).
#[track_caller]
fn assert_mostly_fast(what: &str, fast: u64, all: u64, slack: u64, d: &FpCounters) {
    assert!(
        fast <= all && fast + slack >= all,
        "{what}: {fast} of {all} translated packets took the fast path, \
         want all but at most {slack} (counter deltas: {d:?})"
    );
}

/// Panics unless inbound packets took the fast path as `mode` wants: in TC
/// mode all but at most `slack` translated ones; in XDP mode none (the only
/// inside interface is a veth, never an XDP redirect target), while the
/// translations still happened.
#[track_caller]
fn assert_inbound(what: &str, mode: Ingress, slack: u64, d: &FpCounters) {
    match mode {
        Ingress::Tc => assert_mostly_fast(what, d.fp_in, d.ingress, slack, d),
        Ingress::Xdp => assert!(
            d.fp_in == 0,
            "{what}: XDP mode redirected {} of {} translated packets into a veth \
             (not an XDP target; counter deltas: {d:?})",
            d.fp_in,
            d.ingress
        ),
    }
}

/// What `fast_path_inbound` counts for `n` inbound packets that would take
/// the fast path in TC mode: `n` in TC mode, 0 in XDP mode.
fn fast_in(mode: Ingress, n: u64) -> u64 {
    match mode {
        Ingress::Tc => n,
        Ingress::Xdp => 0,
    }
}

/// `ping -c N` from `ns` (from `src` if given) to `to`; panics unless every
/// echo was answered.
fn ping(ns: &Netns, src: Option<Ipv4Addr>, to: Ipv4Addr, n: u32) {
    let (to, n_s) = (to.to_string(), n.to_string());
    let mut args = vec!["ping", "-n", "-c", &n_s, "-i", "0.2", "-W", "2"];
    let src_s = src.map(|s| s.to_string());
    if let Some(s) = &src_s {
        args.extend_from_slice(&["-I", s]);
    }
    args.push(&to);
    let out = ns.run(Duration::from_secs(15), &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want = format!("{n} packets transmitted, {n} received");
    assert!(
        out.status.success() && stdout.contains(&want),
        "`{}` in {} failed ({}):\n{stdout}{}",
        args.join(" "),
        ns.name(),
        describe(out.status),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// UDP traceroute (one probe per hop, one at a time) from `ns` to `to`,
/// from `src` if given; returns the hop addresses.
fn traceroute(ns: &Netns, src: Option<Ipv4Addr>, to: Ipv4Addr) -> Vec<Option<String>> {
    let to = to.to_string();
    let mut args = vec![
        "traceroute",
        "-n",
        "-q",
        "1",
        "-N",
        "1",
        "-w",
        "2",
        "-m",
        "5",
    ];
    let src_s = src.map(|s| s.to_string());
    if let Some(s) = &src_s {
        args.extend_from_slice(&["-s", s]);
    }
    args.push(&to);
    let out = ns.run(Duration::from_secs(30), &args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{}` failed ({}):\n{stdout}{}",
        args.join(" "),
        describe(out.status),
        String::from_utf8_lossy(&out.stderr)
    );
    hops(&stdout)
}

/// The hops every traceroute from the inside host to the server must show:
/// the gateway's inside address, the router, the server.
fn want_hops() -> Vec<Option<String>> {
    [GW_INT, RTR_EXT, SRV]
        .iter()
        .map(|a| Some(a.to_string()))
        .collect()
}

// ------------------------------------------------------------------ 1

/// 4 MiB up and 4 MiB down over TCP, and 200 UDP request/response
/// exchanges, from the statically mapped host and from the NAPT host: the
/// data arrives intact, the server sees the public addresses, and nearly
/// every translated packet (all but the first outbound packet of each NAPT
/// flow) went through the fast path both ways — outbound only in XDP mode
/// (see the module docs).
fn bulk_tcp_and_udp_take_the_fast_path(tag: &str, mode: Ingress) {
    let mut f = FastTopo::new(tag, mode);
    f.attach(true);
    let t = &f.t;

    // TCP, static 1:1.
    let c0 = f.counters();
    let b = f.tcp_to_server(CLI, 5001, 4 * MIB);
    assert_eq!(*b.server_saw.ip(), PUB1, "static TCP: server's view");
    let d = f.counters().since(&c0);
    // At least one translation per 64 KiB (GSO) each way.
    assert!(
        d.ingress >= 64 && d.egress >= 64,
        "static TCP: too few translations: {d:?}"
    );
    assert_inbound("static TCP inbound", mode, 0, &d);
    assert_mostly_fast("static TCP outbound", d.fp_out, d.egress, 0, &d);

    // TCP, NAPT: the SYN creates the mapping on the normal path.
    let c0 = f.counters();
    let b = f.tcp_to_server(CLI2, 5002, 4 * MIB);
    assert_eq!(*b.server_saw.ip(), POOL, "NAPT TCP: server's view");
    let d = f.counters().since(&c0);
    assert!(
        d.ingress >= 64 && d.egress >= 64,
        "NAPT TCP: too few translations: {d:?}"
    );
    assert_inbound("NAPT TCP inbound", mode, 0, &d);
    assert_mostly_fast("NAPT TCP outbound", d.fp_out, d.egress, 1, &d);

    // UDP, both hosts.
    for (host, public, port, slack_out) in [(CLI, PUB1, 5003, 0), (CLI2, POOL, 5004, 1)] {
        let c0 = f.counters();
        let mut p = UdpPair::new(&t.cli, sa(host, 0), &t.srv, sa(SRV, port), sa(SRV, port));
        let first = p.exchange(1200);
        assert_eq!(*first.server_saw.ip(), public, "UDP from {host}");
        assert_eq!(
            first.client_saw,
            sa(SRV, port),
            "UDP reply source at {host}"
        );
        let mut sent = u64::from(first.attempts);
        for _ in 1..200 {
            let e = p.exchange(1200);
            assert_eq!(
                e.server_saw, first.server_saw,
                "UDP from {host}: mapping moved"
            );
            assert_eq!(e.client_saw, sa(SRV, port));
            sent += u64::from(e.attempts);
        }
        let d = f.counters().since(&c0);
        assert!(
            d.egress >= 200 && d.egress <= sent && d.ingress == 200,
            "UDP from {host}: {sent} requests sent, 200 replies: {d:?}"
        );
        assert_inbound(&format!("UDP from {host}, inbound"), mode, 0, &d);
        assert_mostly_fast(
            &format!("UDP from {host}, outbound"),
            d.fp_out,
            d.egress,
            slack_out,
            &d,
        );
        // The external interface's egress program leaves the packets the
        // fast path translated alone without looking at them again (they
        // would count as not ours). A little slack for ARP and the like.
        assert!(
            d.not_ours < 20,
            "UDP from {host}: {} packets looked at again after the fast path: {d:?}",
            d.not_ours
        );
    }

    f.t.stop_agent();
}

// ------------------------------------------------------------------ 2

/// The first packet of a new NAPT flow creates its mapping on the normal
/// path (exactly one outbound translation outside the fast path); the
/// reply and every later packet take the fast path (inbound: TC mode
/// only). Same for a new TCP connection: only the SYN leaves through the
/// normal path.
fn first_packet_of_a_new_flow_takes_the_normal_path(tag: &str, mode: Ingress) {
    let mut f = FastTopo::new(tag, mode);
    f.attach(true);
    let t = &f.t;

    // Resolve the neighbours first (one exchange on another flow), so the
    // counts below do not depend on ARP.
    let mut warm = UdpPair::new(&t.cli, sa(CLI2, 0), &t.srv, sa(SRV, 6001), sa(SRV, 6001));
    warm.exchange(100);

    let mut p = UdpPair::new(
        &t.cli,
        sa(CLI2, 40000),
        &t.srv,
        sa(SRV, 6000),
        sa(SRV, 6000),
    );
    // Exact translation counts; `not_ours` is left out (stray IPv6 or ARP
    // frames on the links move it).
    let exact = |what: &str, e: &Exchange, d: FpCounters, want: FpCounters| {
        assert_eq!(e.attempts, 1, "{what}: a datagram was lost ({d:?})");
        let d = FpCounters { not_ours: 0, ..d };
        assert_eq!(d, want, "{what}: counter deltas");
    };
    let c0 = f.counters();
    let e = p.exchange(200);
    assert_eq!(*e.server_saw.ip(), POOL);
    let d = f.counters().since(&c0);
    exact(
        "first exchange of a new UDP flow",
        &e,
        d,
        FpCounters {
            fp_in: fast_in(mode, 1),
            fp_out: 0,
            ingress: 1,
            egress: 1,
            ..Default::default()
        },
    );
    let c0 = f.counters();
    let e2 = p.exchange(200);
    assert_eq!(e2.server_saw, e.server_saw, "mapping changed");
    let d = f.counters().since(&c0);
    exact(
        "second exchange",
        &e2,
        d,
        FpCounters {
            fp_in: fast_in(mode, 1),
            fp_out: 1,
            ingress: 1,
            egress: 1,
            ..Default::default()
        },
    );

    // The same flow to another remote port is a new session: normal path
    // again for its first packet.
    let srv2 = xnat_tests::napt_topo::udp_bind(&t.srv, sa(SRV, 6002));
    let c0 = f.counters();
    p.client.send_to(b"new session", sa(SRV, 6002)).unwrap();
    let got = xnat_tests::napt_topo::recv_within(&srv2, Duration::from_secs(3))
        .expect("recv")
        .expect("datagram to a second remote port never arrived");
    assert_eq!(got.0, b"new session");
    assert_eq!(got.1, e.server_saw.into(), "endpoint-independent mapping");
    let d = f.counters().since(&c0);
    assert_eq!(
        (d.fp_out, d.egress),
        (0, 1),
        "first packet to a new remote endpoint: {d:?}"
    );

    // A new TCP connection: everything but the SYN is fast.
    let c0 = f.counters();
    let b = f.tcp_to_server(CLI2, 6003, 64 * 1024);
    assert_eq!(*b.server_saw.ip(), POOL);
    let d = f.counters().since(&c0);
    assert!(
        d.egress >= 3
            && d.fp_out + 1 == d.egress
            && d.fp_in == fast_in(mode, d.ingress)
            && d.ingress >= 3,
        "new TCP connection: want only the SYN outside the fast path: {d:?}"
    );

    f.t.stop_agent();
}

/// ICMP echo from both hosts works; NAPT ICMP never takes the outbound
/// fast path (ICMP is not a fast-path protocol). Traceroute from both
/// hosts shows the gateway (the TTL-1 probe stays on the normal path and
/// the gateway answers), the router and the server (ICMP errors from
/// beyond, translated back); from the static host the TTL ≥ 2 probes go
/// through the fast path, and so do the errors answering them in TC mode
/// (in XDP mode they take the stack).
fn icmp_echo_and_traceroute(tag: &str, mode: Ingress) {
    let mut f = FastTopo::new(tag, mode);
    f.attach(true);
    let t = &f.t;

    ping(&t.cli, None, SRV, 3);
    let c0 = f.counters();
    ping(&t.cli, Some(CLI2), SRV, 3);
    let d = f.counters().since(&c0);
    assert!(
        d.fp_out == 0 && d.egress == 3 && d.ingress == 3,
        "NAPT ping: echo requests must take the normal path: {d:?}"
    );
    // Inbound pings to the static host.
    ping(&t.srv, None, PUB1, 3);

    let c0 = f.counters();
    let h = traceroute(&t.cli, None, SRV);
    assert_eq!(h, want_hops(), "traceroute from {CLI} (static)");
    let d = f.counters().since(&c0);
    // Probes with TTL 2 and 3 leave through the fast path (TTL 1 does
    // not); the time-exceeded from the router and the port-unreachable
    // from the server come back through it.
    assert!(
        d.fp_out >= 2 && d.ingress >= 2,
        "static traceroute: fast path not used: {d:?}"
    );
    assert_inbound("static traceroute, ICMP errors", mode, d.ingress - 2, &d);

    let h = traceroute(&t.cli, Some(CLI2), SRV);
    assert_eq!(h, want_hops(), "traceroute from {CLI2} (NAPT)");

    f.t.stop_agent();
}

/// A UDP datagram of 4000 bytes (three fragments each way) from an
/// established flow arrives intact both ways. Outbound NAPT fragments never
/// take the fast path.
fn fragmented_udp_takes_the_normal_path(tag: &str, mode: Ingress) {
    let mut f = FastTopo::new(tag, mode);
    f.attach(true);
    let t = &f.t;

    for (host, public, port) in [(CLI, PUB1, 7001), (CLI2, POOL, 7002)] {
        let mut p = UdpPair::new(&t.cli, sa(host, 0), &t.srv, sa(SRV, port), sa(SRV, port));
        let small = p.exchange(100);
        assert_eq!(*small.server_saw.ip(), public);
        let c0 = f.counters();
        let frags0 = t.counter("fragments_translated");
        for _ in 0..3 {
            let big = p.exchange(4000);
            assert_eq!(big.server_saw, small.server_saw, "fragmented from {host}");
            assert_eq!(big.client_saw, sa(SRV, port));
        }
        let d = f.counters().since(&c0);
        if host == CLI2 {
            assert_eq!(d.fp_out, 0, "NAPT fragments took the fast path: {d:?}");
            // 4000 bytes over MTU 1500: 3 fragments each way, the 2 later
            // ones translated by their first fragment's translation.
            let frags = t.counter("fragments_translated") - frags0;
            assert!(
                frags >= 12,
                "NAPT: {frags} later fragments translated in 3 exchanges, want ≥ 12 \
                 (were the datagrams fragmented?)"
            );
        }
        // And the flow is still fast for whole datagrams afterwards.
        let c0 = f.counters();
        p.exchange(100);
        let d = f.counters().since(&c0);
        assert!(
            d.fp_out == 1 && d.fp_in == fast_in(mode, 1) && d.ingress == 1,
            "after fragments, from {host}: {d:?}"
        );
    }

    f.t.stop_agent();
}

/// Flushing the gateway's neighbour table mid-flow: the next packets find
/// no resolved neighbour. TC redirects with `bpf_redirect_neigh` (still the
/// fast path); XDP falls back to the stack for inbound packets. Either
/// way nothing is lost, and a bulk TCP transfer survives repeated flushes.
fn unresolved_neighbour_falls_back(tag: &str, mode: Ingress) {
    let mut f = FastTopo::new(tag, mode);
    f.attach(true);
    let t = &f.t;

    for (host, port) in [(CLI, 8001), (CLI2, 8002)] {
        let mut p = UdpPair::new(&t.cli, sa(host, 0), &t.srv, sa(SRV, port), sa(SRV, port));
        for _ in 0..5 {
            p.exchange(300);
        }
        t.nat.ip(&["neigh", "flush", "all"]);
        let neigh = t.nat.ip(&["-4", "neigh", "show"]);
        let resolved: Vec<&str> = neigh
            .lines()
            .filter(|l| {
                ["REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT"]
                    .iter()
                    .any(|s| l.contains(s))
            })
            .collect();
        assert!(
            resolved.is_empty(),
            "neighbours still resolved after the flush: {resolved:?}"
        );
        let c0 = f.counters();
        let e = p.exchange(300);
        let d = f.counters().since(&c0);
        assert_eq!(
            e.attempts, 1,
            "from {host}: the first exchange after the flush lost a datagram ({d:?})"
        );
        // Outbound: the inside program is TC in both modes and uses
        // bpf_redirect_neigh. Inbound: TC does too; XDP passes the packet
        // to the stack (it never redirects into a veth anyway).
        assert_eq!(
            (d.fp_out, d.fp_in, d.ingress),
            (1, fast_in(mode, 1), 1),
            "from {host}, first exchange after the flush (fp_out, fp_in, ingress): {d:?}"
        );
        // Resolved again: fast both ways.
        let c0 = f.counters();
        for _ in 0..5 {
            let e = p.exchange(300);
            assert_eq!(
                e.attempts, 1,
                "from {host}: lost a datagram after the flush"
            );
        }
        let d = f.counters().since(&c0);
        assert_eq!(
            (d.fp_out, d.fp_in, d.ingress),
            (5, fast_in(mode, 5), 5),
            "from {host}, after resolving (fp_out, fp_in, ingress): {d:?}"
        );
    }

    // Bulk TCP while the table is flushed every 20 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let flushes = Arc::new(AtomicU32::new(0));
    std::thread::scope(|s| {
        let (stop2, flushes2) = (Arc::clone(&stop), Arc::clone(&flushes));
        let nat = &t.nat;
        let flusher = s.spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                nat.ip(&["neigh", "flush", "all"]);
                flushes2.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for (host, public, port) in [(CLI, PUB1, 8003), (CLI2, POOL, 8004)] {
                let b = f.tcp_to_server(host, port, 4 * MIB);
                assert_eq!(*b.server_saw.ip(), public);
            }
        }));
        stop.store(true, Ordering::Relaxed);
        flusher.join().unwrap();
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    });
    assert!(
        flushes.load(Ordering::Relaxed) >= 1,
        "the neighbour table was never flushed during the transfer"
    );

    f.t.stop_agent();
}

/// The fast path caches FIB results for the timer tick they were made in
/// (at most 10 ms): a route change must reach established flows right
/// after. A blackhole route to the server stops them (the stack drops
/// them; the fast path forwards none), and once it is gone they take the
/// fast path again. The waits are the documented bound, not a
/// synchronisation: the property is "a tick later, the new route holds".
fn route_change_reaches_the_fast_path(tag: &str, mode: Ingress) {
    let mut f = FastTopo::new(tag, mode);
    f.attach(true);
    let t = &f.t;
    let blackhole = format!("{SRV}/32");

    for (host, port) in [(CLI, 8011), (CLI2, 8012)] {
        let mut p = UdpPair::new(&t.cli, sa(host, 0), &t.srv, sa(SRV, port), sa(SRV, port));
        // Established, its route cached by the last of these.
        let c0 = f.counters();
        let mut sent = 0;
        for _ in 0..3 {
            sent += p.exchange(300).attempts as u64;
        }
        let d = f.counters().since(&c0);
        assert!(
            d.fp_out + 1 >= sent,
            "from {host}: the flow did not take the fast path before the change ({d:?})"
        );

        t.nat.ip(&["route", "add", "blackhole", &blackhole]);
        std::thread::sleep(Duration::from_millis(50));
        let c0 = f.counters();
        let got = p.try_exchange(300, 3, Duration::from_millis(300));
        let d = f.counters().since(&c0);
        assert!(
            got.is_none(),
            "from {host}: a datagram reached the server through a blackhole route              (counter deltas: {d:?})"
        );
        assert_eq!(
            (d.fp_out, d.egress),
            (0, 0),
            "from {host}: packets were forwarded or translated past the blackhole route              (fp_out, egress): {d:?}"
        );

        t.nat.ip(&["route", "del", "blackhole", &blackhole]);
        std::thread::sleep(Duration::from_millis(50));
        let c0 = f.counters();
        let mut sent = 0;
        for _ in 0..3 {
            sent += p.exchange(300).attempts as u64;
        }
        let d = f.counters().since(&c0);
        assert_eq!(
            (d.fp_out, d.egress),
            (sent, sent),
            "from {host}: after the route came back, requests sent {sent} (fp_out, egress): {d:?}"
        );
    }
    f.t.stop_agent();
}

/// Traffic for the gateway itself: from the inside (static and NAPT hosts)
/// to its inside and outside addresses, from the outside to its outside
/// address — ping and TCP. None of it is translated or forwarded by the
/// fast path, and the gateway sees the real source addresses.
fn traffic_to_the_gateway_itself_is_untouched(tag: &str, mode: Ingress) {
    let mut f = FastTopo::new(tag, mode);
    f.attach(true);
    let t = &f.t;
    // The topology makes the gateway ignore pings (so a ping test elsewhere
    // cannot pass untranslated); here it must answer them.
    t.nat.sysctl("net.ipv4.icmp_echo_ignore_all", "0");

    // Established flows first, so the hosts' flows are "fast" ones.
    for (host, port) in [(CLI, 9001), (CLI2, 9002)] {
        UdpPair::new(&t.cli, sa(host, 0), &t.srv, sa(SRV, port), sa(SRV, port)).exchange(100);
    }

    let c0 = f.counters();
    ping(&t.cli, None, GW_INT, 2);
    ping(&t.cli, None, GW_EXT, 2);
    ping(&t.cli, Some(CLI2), GW_INT, 2);
    ping(&t.srv, None, GW_EXT, 2);

    let listener = tcp_listen(&t.nat, sa(Ipv4Addr::UNSPECIFIED, 9100));
    for (ns, src, dst) in [
        (&t.cli, CLI, GW_INT),
        (&t.cli, CLI, GW_EXT),
        (&t.cli, CLI2, GW_INT),
        (&t.srv, SRV, GW_EXT),
    ] {
        let mut c = xnat_tests::napt_topo::tcp_connect(ns, sa(src, 0), sa(dst, 9100), false)
            .unwrap_or_else(|e| panic!("TCP {src} -> {dst}:9100 (the gateway): {e}"));
        let (mut s, peer) = accept_within(&listener, Duration::from_secs(5));
        assert_eq!(
            peer.ip(),
            std::net::IpAddr::from(src),
            "the gateway must see {src} untranslated when {src} talks to {dst}"
        );
        use std::io::{Read, Write};
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"hello gateway").unwrap();
        let mut buf = [0u8; 13];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello gateway");
        s.write_all(b"hello client!").unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello client!");
    }
    let d = f.counters().since(&c0);
    assert_eq!(
        FpCounters { not_ours: 0, ..d },
        FpCounters::default(),
        "traffic to the gateway itself was translated or fast-forwarded"
    );

    f.t.stop_agent();
}

// ------------------------------------------------------------------ 3

/// Everything one run of [`mixed_traffic`] observed, as text.
fn mixed_traffic(f: &FastTopo, run: u16) -> Vec<String> {
    let t = &f.t;
    let mut seen = Vec::new();
    // Ports differ per run (no TIME_WAIT clash); what is recorded does not
    // depend on them.
    let base = 10_000 + run * 100;
    for (host, local_port) in [(CLI, 30_000), (CLI2, 30_001)] {
        let mut p = UdpPair::new(
            &t.cli,
            sa(host, local_port + run),
            &t.srv,
            sa(SRV, base + 1),
            sa(SRV, base + 1),
        );
        for len in [100, 1400, 4000, 100] {
            let e = p.exchange(len);
            seen.push(format!(
                "UDP {len} B from {host}: server saw {} (port {}), reply from {}",
                e.server_saw.ip(),
                if e.server_saw.port() == local_port + run {
                    "kept"
                } else {
                    "changed"
                },
                e.client_saw.ip()
            ));
        }
        let b = f.tcp_to_server(host, base + 2 + u16::from(host == CLI2), MIB);
        seen.push(format!("TCP from {host}: server saw {}", b.server_saw.ip()));
        ping(&t.cli, Some(host), SRV, 2);
        seen.push(format!("ping from {host}: ok"));
        seen.push(format!(
            "traceroute from {host}: {:?}",
            traceroute(&t.cli, Some(host), SRV)
        ));
    }
    ping(&t.srv, None, PUB1, 2);
    seen.push(format!("ping from outside to {PUB1}: ok"));
    seen
}

/// The same traffic with the fast path off and on gives the same results;
/// off, the fast-path counters stay 0; on, both move (inbound: TC mode
/// only; XDP mode keeps it at 0).
fn fast_path_off_and_on_give_the_same_results(tag: &str, mode: Ingress) {
    let mut f = FastTopo::new(tag, mode);

    f.attach(false);
    let off = mixed_traffic(&f, 0);
    let c_off = f.counters();
    f.t.stop_agent();

    f.attach(true);
    let on = mixed_traffic(&f, 1);
    let c_on = f.counters();
    f.t.stop_agent();

    assert_eq!(off, on, "fast path off (left) vs on (right)");
    assert!(
        c_off.fp_in == 0 && c_off.fp_out == 0 && c_off.ingress > 0 && c_off.egress > 0,
        "fast path off: {c_off:?}"
    );
    match mode {
        Ingress::Tc => assert!(
            c_on.fp_in > 0 && c_on.fp_out > 0,
            "fast path on: counters did not move: {c_on:?}"
        ),
        Ingress::Xdp => assert!(
            c_on.fp_in == 0 && c_on.fp_out > 0 && c_on.ingress > 0,
            "fast path on, XDP mode: want outbound fast and inbound never: {c_on:?}"
        ),
    }
}

// ------------------------------------------------------------------ agent

/// What the agent writes for the fast path, read from its pinned maps:
/// `FAST_PATH[FAST_PATH_ON]` is 1 with `--fast-path` and 0 without,
/// `FAST_PATH[FAST_PATH_EXT_IFINDEX]` is EXT's ifindex either way (a reload
/// may switch the fast path on), and `XDP_TARGETS` stays empty: it lists
/// the physical NICs running xnat's XDP programs, and EXT and `int0` are
/// veths.
fn agent_fills_the_fast_path_maps(tag: &str, mode: Ingress) {
    let mut f = FastTopo::new(tag, mode);
    let ext = ifindex(&f.t.nat, &f.t.ext);
    for fast in [true, false] {
        f.attach(fast);
        assert_eq!(
            f.fast_path_map(),
            [u32::from(fast), ext],
            "FAST_PATH [on, external ifindex] with fast path {fast} (EXT is {ext})"
        );
        assert_eq!(f.xdp_targets(), vec![], "XDP_TARGETS with veths only");
        f.t.stop_agent();
    }
}

// ------------------------------------------------------------------ XDP redirect

/// The XDP redirect itself, end to end. The agent lists a veth in
/// `XDP_TARGETS` only when told (`--xdp-redirect`), even when its peer
/// could receive XDP frames: with `xnat_noop_xdp` on `cli`'s eth0, inbound
/// still takes the stack. Attached again with `--xdp-redirect int0`,
/// inbound packets of established flows are translated and redirected by
/// XDP: TCP bulk and UDP exchanges arrive intact both ways, nearly all of
/// it through the fast path both ways.
#[test]
fn xdp_redirect_into_a_listed_veth_with_an_xdp_peer() {
    let mut f = FastTopo::new("xred", Ingress::Xdp);
    let _noop = NoopXdp::attach(&f.t.cli, "eth0");
    f.attach(true);
    let t = &f.t;

    let mut p = UdpPair::new(&t.cli, sa(CLI, 0), &t.srv, sa(SRV, 9801), sa(SRV, 9801));
    p.exchange(300);
    let c0 = f.counters();
    for _ in 0..20 {
        p.exchange(300);
    }
    let d = f.counters().since(&c0);
    assert!(
        d.fp_in == 0 && d.ingress >= 20 && d.fp_out == d.egress && d.egress >= 20,
        "int0 not in XDP_TARGETS: want inbound on the stack, outbound fast: {d:?}"
    );

    f.t.stop_agent();
    let mut args = FastTopo::attach_args(true);
    args.extend(["--xdp-redirect", "int0"]);
    f.t.attach(&args);
    let t = &f.t;
    let int0 = ifindex(&t.nat, "int0");
    assert_eq!(f.xdp_targets(), vec![(int0, int0)], "XDP_TARGETS");

    let c0 = f.counters();
    for _ in 0..20 {
        let e = p.exchange(300);
        assert_eq!(*e.server_saw.ip(), PUB1);
        assert_eq!(e.client_saw, sa(SRV, 9801));
    }
    let d = f.counters().since(&c0);
    assert!(
        d.fp_in == d.ingress && d.ingress >= 20 && d.fp_out == d.egress && d.egress >= 20,
        "UDP with int0 in XDP_TARGETS: want every translated packet fast: {d:?}"
    );

    for (host, public, port) in [(CLI, PUB1, 9802), (CLI2, POOL, 9803)] {
        let c0 = f.counters();
        let b = f.tcp_to_server(host, port, 4 * MIB);
        assert_eq!(*b.server_saw.ip(), public, "TCP from {host}");
        let d = f.counters().since(&c0);
        assert!(
            d.ingress >= 64 && d.egress >= 64,
            "TCP from {host}: too few translations: {d:?}"
        );
        // XDP: the NAPT host's first reply may find 10.0.0.3 unresolved
        // (the gateway never needed it) and take the stack.
        let slack_in = u64::from(host == CLI2);
        assert_mostly_fast(
            &format!("TCP from {host}, inbound (XDP redirect)"),
            d.fp_in,
            d.ingress,
            slack_in,
            &d,
        );
        assert_mostly_fast(
            &format!("TCP from {host}, outbound"),
            d.fp_out,
            d.egress,
            u64::from(host == CLI2),
            &d,
        );
    }

    f.t.stop_agent();
}

// ------------------------------------------------------------------ XDP inside

both_modes!(outbound_fast_path_in_xdp_on_the_inside_interface, "ixdp");

/// Frames EXT sent as XDP frames (redirected into it by an XDP program),
/// from the veth's own counters.
fn xdp_xmit(f: &FastTopo) -> u64 {
    let out = f.t.nat.run_ok(&["ethtool", "-S", &f.t.ext]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("tx_queue_0_xdp_xmit:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no tx_queue_0_xdp_xmit in `ethtool -S {}`: {out}", f.t.ext))
}

/// `--inside-hook xdp`: the outbound fast path runs in XDP on `int0`, in
/// front of the TC program. The client sends complete checksums (tx
/// checksum offload off, like a host behind a wire, DESIGN §2). EXT is a
/// veth: it takes XDP redirects only with an XDP program on its peer
/// (`xnat_noop_xdp` on `rtr`'s eth0) and only once declared with
/// `--xdp-redirect`. Without the declaration the XDP program passes the
/// packets on and the TC fast path forwards them (EXT sends no XDP
/// frames); with it, established UDP and TCP flows of both hosts leave as
/// XDP frames (EXT's `tx_queue_0_xdp_xmit` counts them), translated,
/// intact both ways (the far end's stack checks every checksum).
fn outbound_fast_path_in_xdp_on_the_inside_interface(tag: &str, mode: Ingress) {
    let mut f = FastTopo::new(tag, mode);
    f.t.cli.run_ok(&["ethtool", "-K", "eth0", "tx", "off"]);
    let _peer = NoopXdp::attach(&f.t.rtr, "eth0");
    let ext = f.t.ext.clone();
    let ext_index = ifindex(&f.t.nat, &ext);
    let mut args = FastTopo::attach_args(true);
    args.extend(["--inside-hook", "xdp"]);

    // Not declared: no veth is an XDP target (not even with xnat's XDP
    // programs on it: what counts is its peer); the TC fast path does the
    // work.
    f.t.attach(&args);
    assert_eq!(
        f.xdp_targets(),
        vec![],
        "XDP_TARGETS without --xdp-redirect"
    );
    let t = &f.t;
    if mode == Ingress::Tc {
        let mut p = UdpPair::new(&t.cli, sa(CLI, 0), &t.srv, sa(SRV, 9901), sa(SRV, 9901));
        p.exchange(300);
        let (c0, x0) = (f.counters(), xdp_xmit(&f));
        for _ in 0..20 {
            assert_eq!(*p.exchange(300).server_saw.ip(), PUB1);
        }
        let d = f.counters().since(&c0);
        assert_mostly_fast("UDP, EXT not declared", d.fp_out, d.egress, 0, &d);
        assert_eq!(
            xdp_xmit(&f),
            x0,
            "XDP frames sent through the undeclared EXT"
        );
    }
    f.t.stop_agent();

    args.extend(["--xdp-redirect", ext.as_str()]);
    f.t.attach(&args);
    assert_eq!(
        f.xdp_targets(),
        vec![(ext_index, ext_index)],
        "XDP_TARGETS with --xdp-redirect {ext}"
    );
    let t = &f.t;
    for (host, public, port, slack) in [(CLI, PUB1, 9902, 0), (CLI2, POOL, 9903, 1)] {
        let mut p = UdpPair::new(&t.cli, sa(host, 0), &t.srv, sa(SRV, port), sa(SRV, port));
        let first = p.exchange(1200);
        assert_eq!(*first.server_saw.ip(), public, "UDP from {host}");
        let (c0, x0) = (f.counters(), xdp_xmit(&f));
        for _ in 0..50 {
            let e = p.exchange(1200);
            assert_eq!(
                e.server_saw, first.server_saw,
                "UDP from {host}: mapping moved"
            );
            assert_eq!(e.client_saw, sa(SRV, port), "UDP reply source at {host}");
        }
        let d = f.counters().since(&c0);
        let x = xdp_xmit(&f) - x0;
        assert_mostly_fast(
            &format!("UDP from {host}, outbound"),
            d.fp_out,
            d.egress,
            slack,
            &d,
        );
        assert!(
            x >= d.fp_out && d.fp_out >= 50,
            "UDP from {host}: {x} XDP frames left EXT for {} fast-path packets: {d:?}",
            d.fp_out
        );
    }
    for (host, public, port) in [(CLI, PUB1, 9904), (CLI2, POOL, 9905)] {
        let (c0, x0) = (f.counters(), xdp_xmit(&f));
        let b = f.tcp_to_server(host, port, 4 * MIB);
        assert_eq!(*b.server_saw.ip(), public, "TCP from {host}");
        let d = f.counters().since(&c0);
        let x = xdp_xmit(&f) - x0;
        // No TSO without checksum offload: the client's segments arrive
        // MTU-sized, 4 MiB is some 2900 of them.
        assert!(
            d.egress >= 2000,
            "TCP from {host}: too few translations: {d:?}"
        );
        assert_mostly_fast(
            &format!("TCP from {host}, outbound"),
            d.fp_out,
            d.egress,
            u64::from(host == CLI2),
            &d,
        );
        assert!(
            x >= d.fp_out,
            "TCP from {host}: {x} XDP frames left EXT for {} fast-path packets: {d:?}",
            d.fp_out
        );
    }
    f.t.stop_agent();
}

// ------------------------------------------------------------------ bridge

both_modes!(inside_bridge_keeps_working, "brg");

/// The inside interface is a bridge (`int0` of the NAPT topology,
/// `xnat_tests::napt_topo`, with ports to hosts A and B), as on most home
/// routers and container hosts. The FIB's egress device for inbound
/// packets is then the bridge. TC can redirect to it; an XDP redirect
/// cannot (a bridge has no `ndo_xdp_xmit`: the kernel drops the frame), so
/// the XDP fast path must never try it. No XDP program on the hosts'
/// veths. Established flows keep working in both modes; the fast path is
/// used both ways in TC mode, outbound only in XDP mode.
fn inside_bridge_keeps_working(tag: &str, mode: Ingress) {
    use xnat_tests::napt_topo::{HOST_A, HOST_B, NaptTopo, SRV1};
    let mut t = NaptTopo::new(tag, mode);
    t.attach(&[
        "--pool",
        "198.51.100.1",
        "--internal",
        "10.0.0.0/24",
        "--inside",
        "int0",
        "--fast-path",
    ]);
    for (ns, host, port) in [(&t.a, HOST_A, 9500), (&t.b, HOST_B, 9501)] {
        let mut p = UdpPair::new(ns, sa(host, 0), &t.srv, sa(SRV1, port), sa(SRV1, port));
        for i in 0..20 {
            let e = p.try_exchange(200, 3, Duration::from_secs(1));
            assert!(
                e.is_some(),
                "UDP exchange {i} from {host} through the inside bridge failed \
                 (3 tries); xnat stats: {}",
                t.stats()
            );
        }
    }
    // Through the fast path (the first outbound packet of each flow takes
    // the normal path); inbound in TC mode only.
    let (fp_in, fp_out, ingress) = (
        t.counter("fast_path_inbound"),
        t.counter("fast_path_outbound"),
        t.counter("ingress_translated_packets"),
    );
    let want_in = match mode {
        Ingress::Tc => fp_in >= 40,
        Ingress::Xdp => fp_in == 0,
    };
    assert!(
        want_in && fp_out >= 38 && ingress >= 40,
        "fast path through the bridge ({mode:?}): inbound {fp_in} of {ingress}, \
         outbound {fp_out}"
    );
    t.stop_agent();
}

// ------------------------------------------------------------------ two inside interfaces

/// Two inside interfaces (`--inside int0,int1`): the statically mapped host
/// 10.0.0.2 talks to a server on the second inside network, 10.0.1.2. The
/// gateway routes between its inside networks without translating (only
/// traffic leaving through EXT is translated): the server must see
/// 10.0.0.2, with the fast path off and on alike, and none of it is
/// translated or taken by the fast path. With the fast path on, traffic to
/// the outside from the same host still takes it (the check above is not
/// vacuous).
fn inside_to_inside_is_not_translated(tag: &str, mode: Ingress) {
    let mut f = FastTopo::new(tag, mode);
    let lan2 = Netns::create(format!(
        "xt{}-{tag}{}-lan2",
        std::process::id(),
        &mode.as_str()[..1]
    ));
    xnat_tests::netns::host(&[
        "ip",
        "link",
        "add",
        "int1",
        "netns",
        f.t.nat.name(),
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        lan2.name(),
    ]);
    f.t.nat.ip(&["addr", "add", "10.0.1.1/24", "dev", "int1"]);
    f.t.nat.ip(&["link", "set", "int1", "up"]);
    lan2.ip(&["addr", "add", "10.0.1.2/24", "dev", "eth0"]);
    lan2.ip(&["link", "set", "eth0", "up"]);
    lan2.ip(&["route", "add", "default", "via", "10.0.1.1"]);
    let lan2_host = Ipv4Addr::new(10, 0, 1, 2);

    let mut seen = Vec::new();
    for (fast, port) in [(false, 9700), (true, 9701)] {
        let mut args = FastTopo::attach_args(fast);
        let i = args.iter().position(|a| *a == "int0").unwrap();
        args[i] = "int0,int1";
        f.t.attach(&args);
        // Both inside interfaces are veths: never XDP targets.
        assert_eq!(f.xdp_targets(), vec![], "XDP_TARGETS");
        let c0 = f.counters();
        let b = tcp_bulk(
            &f.t.cli,
            sa(CLI, 0),
            &lan2,
            sa(lan2_host, port),
            sa(lan2_host, port),
            64 * 1024,
            64 * 1024,
        );
        let mut p = UdpPair::new(
            &f.t.cli,
            sa(CLI, 0),
            &lan2,
            sa(lan2_host, port),
            sa(lan2_host, port),
        );
        let e = p.exchange(100);
        let d = f.counters().since(&c0);
        // `not_ours` left out: stray IPv6 or ARP frames move it.
        assert_eq!(
            FpCounters { not_ours: 0, ..d },
            FpCounters::default(),
            "inside-to-inside traffic (fast path {fast}) was translated or fast-forwarded"
        );
        seen.push((fast, *b.server_saw.ip(), *e.server_saw.ip()));
        if fast {
            let c0 = f.counters();
            let mut out =
                UdpPair::new(&f.t.cli, sa(CLI, 0), &f.t.srv, sa(SRV, port), sa(SRV, port));
            for _ in 0..5 {
                assert_eq!(*out.exchange(100).server_saw.ip(), PUB1);
            }
            let d = f.counters().since(&c0);
            assert!(
                d.egress >= 5
                    && d.fp_out == d.egress
                    && d.ingress >= 5
                    && d.fp_in == fast_in(mode, d.ingress),
                "to the outside from {CLI} with two inside interfaces: want every \
                 translated packet fast (inbound: TC mode only): {d:?}"
            );
        }
        f.t.stop_agent();
    }
    assert_eq!(
        seen,
        vec![(false, CLI, CLI), (true, CLI, CLI)],
        "(fast path, TCP source seen by 10.0.1.2, UDP source seen by 10.0.1.2)"
    );
}
