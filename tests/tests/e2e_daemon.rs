//! End-to-end tests of xnat as a daemon (root): config files and `xnat
//! check`, reloads that keep live flows, adopting pinned state after a real
//! SIGKILL, the layout-version check, a Prometheus scrape while traffic
//! runs, the translation log (including a lagging reader), `flows flush`,
//! `--json` listings and exit codes, and refusing interfaces without an
//! Ethernet header.
//!
//! Topology: `xnat_tests::topology` (cli 10.0.0.2/10.0.0.3 — nat — rtr —
//! srv 198.51.100.2); configs from `xnat_tests::daemon_topo` (NAPT of
//! 10.0.0.0/24 behind 203.0.113.2).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use xnat_tests::agent::run_xnat;
use xnat_tests::bindings::Entries;
use xnat_tests::daemon_topo::{
    COLLECTOR, DaemonTopo, LongFlow, METRICS, Nfcapd, POOL, STATIC_PUB, json_lines, sample,
    wait_for_line,
};
use xnat_tests::netns::describe;
use xnat_tests::topology::{CLI, CLI2, Ingress, SRV, attached, error_lines, json_counter};
use xnat_tests::traffic::{sa, tcp_echo, udp_exchange};
use xnat_tests::wait::{SOON, wait_for, wait_until};

const STATIC_MAP: &str = "[[map]]\nprivate = \"10.0.0.3\"\npublic = \"203.0.113.1\"\n";

fn forward(port: u16) -> String {
    format!(
        "[[forward]]\nproto = \"tcp\"\npublic = \"203.0.113.2:{port}\"\ninside = \"10.0.0.2:{port}\"\n"
    )
}

fn ip(a: SocketAddr) -> IpAddr {
    a.ip()
}

/// The source the server sees for a UDP datagram from `from` (an inside
/// address) to srv:`port`.
fn udp_source_seen(d: &DaemonTopo, from: std::net::Ipv4Addr, port: u16) -> IpAddr {
    let seen = udp_exchange(
        &d.t.cli,
        &d.t.srv,
        sa(from, 0),
        sa(SRV, port),
        sa(SRV, port),
        200,
    );
    ip(seen.server_saw_src)
}

/// Pid files of EXT's agent under /run/xnat.
fn pid_files(d: &DaemonTopo) -> Vec<String> {
    std::fs::read_dir("/run/xnat")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{}@", d.ext())))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------

/// A pool holding the gateway's own address (`--masquerade`) with NAPT
/// ports the gateway's own connections may also pick gets a warning that
/// names the overlap and a `--ports` that avoids it, from `check` and from
/// `attach`; ports outside the ephemeral range, or reserved ones, do not.
#[test]
fn warns_when_the_gateway_shares_pool_ports() {
    let mut d = DaemonTopo::new("eph", Ingress::Tc);
    let ext = d.ext().to_string();
    let masq = ["check", &ext, "--masquerade", "--internal", "10.0.0.0/24"];
    // The topology's own namespace starts with the kernel's defaults.
    d.t.nat
        .sysctl("net.ipv4.ip_local_port_range", "32768 60999");
    let warned = |args: &[&str]| -> String {
        let out = d.xnat(args);
        assert!(
            out.status.success(),
            "`xnat {}`: {}\n{}",
            args.join(" "),
            describe(out.status),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let err = warned(&masq);
    assert!(
        err.contains("(this gateway's own address) include 28232 ports the gateway's own connections may pick (32768-60999")
            && err.contains("--ports 1024-32767"),
        "{err}"
    );
    // A pool address that is not the gateway's.
    let err = warned(&[
        "check",
        &ext,
        "--pool",
        "203.0.113.9",
        "--internal",
        "10.0.0.0/24",
    ]);
    assert!(!err.contains("may pick"), "{err}");
    // Ports apart from the ephemeral range.
    let mut apart = masq.to_vec();
    apart.extend(["--ports", "1024-32767"]);
    let err = warned(&apart);
    assert!(!err.contains("may pick"), "{err}");
    // The gateway keeps its own ports out of the pool's range.
    d.t.nat
        .sysctl("net.ipv4.ip_local_port_range", "61000 65535");
    let mut high = masq.to_vec();
    high.extend(["--ports", "1024-60999"]);
    let err = warned(&high);
    assert!(!err.contains("may pick"), "{err}");
    d.t.nat
        .sysctl("net.ipv4.ip_local_port_range", "32768 60999");
    d.t.nat
        .sysctl("net.ipv4.ip_local_reserved_ports", "1024-65535");
    let err = warned(&masq);
    assert!(!err.contains("may pick"), "{err}");
    d.t.nat.sysctl("net.ipv4.ip_local_reserved_ports", "");

    // attach says it too, and runs.
    let mut attach = masq.to_vec();
    attach[0] = "attach";
    d.start(&attach);
    let (_, err) = d.stop();
    assert!(err.contains("may pick (32768-60999"), "{err}");
}

/// `xnat check` accepts a good config and names file, line and key for bad
/// ones; `xnat attach --config BAD` attaches nothing; `attach --config
/// GOOD` (the interface only in the file) translates static, NAPT and
/// forwarded traffic; a second attach is refused while the agent runs.
#[test]
fn config_file_check_and_attach() {
    let mut d = DaemonTopo::new("cfg", Ingress::Tc);
    let ext = d.ext().to_string();
    let good = d.write(
        "good.toml",
        &d.config("", &format!("{STATIC_MAP}\n{}", forward(8080))),
    );

    let out = d.xnat_ok(&["check", "--config", good.to_str().unwrap()]);
    assert!(
        out.contains(&format!("is valid: interface {ext}")) && out.contains("1 forward(s)"),
        "{out}"
    );

    // (file, TOML, expected one-line error)
    let bad = [
        (
            "typo.toml",
            d.config("", "pools = [\"203.0.113.2\"]"),
            "typo.toml:8:1: napt.pools: unknown field `pools`",
        ),
        (
            "inside.toml",
            d.config("", "")
                .replace("pool = [\"203.0.113.2\"]", "pool = [\"10.0.0.9\"]"),
            "inside.toml:7:9: napt.pool[0]: pool address 10.0.0.9 lies inside the internal prefix 10.0.0.0/24",
        ),
        (
            "fwd.toml",
            d.config("", &forward(8080).replace("203.0.113.2", "203.0.113.9")),
            "fwd.toml:8:1: forward[0]: 203.0.113.9 is not a pool address",
        ),
    ];
    for (name, text, expect) in &bad {
        d.assert_config_refused(name, text, expect);
        assert!(
            pid_files(&d).is_empty(),
            "pid file left: {:?}",
            pid_files(&d)
        );
    }

    let ready = d.start(&["attach", "--config", good.to_str().unwrap()]);
    assert!(ready.contains("1 static mapping(s)"), "{ready}");
    // NAPT for 10.0.0.2, the static map for 10.0.0.3, the forward inbound.
    let out = tcp_echo(&d.t.cli, &d.t.srv, sa(SRV, 5001), sa(SRV, 5001), 64 * 1024);
    assert_eq!(ip(out.server_saw_peer), IpAddr::from(POOL));
    assert_eq!(udp_source_seen(&d, CLI2, 5002), IpAddr::from(STATIC_PUB));
    let inb = tcp_echo(&d.t.srv, &d.t.cli, sa(CLI, 8080), sa(POOL, 8080), 16 * 1024);
    assert_eq!(ip(inb.server_saw_peer), IpAddr::from(SRV));

    // A second agent for the same interface is refused; the first lives on.
    let out = d.xnat(&["attach", "--config", good.to_str().unwrap()]);
    let lines = error_lines(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{lines:?}");
    assert!(
        lines.len() == 1 && lines[0].contains(&ext) && lines[0].contains("is running"),
        "{lines:?}"
    );
    assert!(d.agent().try_exit().is_none(), "first agent died");

    d.stop();
    d.t.assert_clean("after SIGTERM");
    assert!(
        pid_files(&d).is_empty(),
        "pid file left: {:?}",
        pid_files(&d)
    );
}

/// A TUN device (no Ethernet header: the programs would misread every
/// packet) is refused as the external interface and as an inside
/// interface, by `check`, `attach` and a reload, with an error that names
/// it and says why; nothing is attached to either interface or pinned.
#[test]
fn non_ethernet_interfaces_are_refused() {
    let mut d = DaemonTopo::new("tun", Ingress::Tc);
    let ext = d.ext().to_string();
    // Named after EXT, so the pin checks below (any pin naming EXT) cover
    // it too.
    let tun = format!("{ext}u");
    d.t.nat.ip(&["tuntap", "add", "dev", &tun, "mode", "tun"]);
    d.t.nat.ip(&["link", "set", &tun, "up"]);
    let why = format!(
        "{tun}: not an Ethernet device (type 65534, e.g. tun/wireguard): xnat translates only \
         on Ethernet interfaces"
    );
    let assert_nothing_left = |d: &DaemonTopo, when: &str| {
        d.t.assert_clean(when);
        let on_tun = attached(&d.t.nat, &tun);
        assert!(
            on_tun.is_empty(),
            "{when}: programs on {tun}:\n{}",
            on_tun.raw
        );
        assert!(
            pid_files(d).is_empty(),
            "{when}: pid file left: {:?}",
            pid_files(d)
        );
    };

    let refusals: [(&[&str], String); 2] = [
        (
            &[&tun, "--map", "10.0.0.3=203.0.113.1"],
            format!("IFACE: {why}"),
        ),
        (
            &[&ext, "--inside", &tun, "--map", "10.0.0.3=203.0.113.1"],
            format!("--inside: {why}"),
        ),
    ];
    for (args, expect) in &refusals {
        for verb in ["check", "attach"] {
            let mut v = vec![verb];
            v.extend_from_slice(args);
            let out = d.xnat(&v);
            let lines = error_lines(&out.stderr);
            let cmd = format!("`xnat {}`", v.join(" "));
            assert_eq!(
                out.status.code(),
                Some(1),
                "{cmd}: {}\n{lines:?}",
                describe(out.status)
            );
            assert!(
                lines.len() == 1 && lines[0] == format!("xnat: {expect}"),
                "{cmd}: expected `xnat: {expect}`, got {lines:?}"
            );
            assert_nothing_left(&d, &format!("after {cmd}"));
        }
    }

    // A reload that adds the TUN device as an inside interface: refused
    // the same way, the agent runs on.
    let cfg = d.write("xnat.toml", &d.config("", ""));
    let cfg = cfg.to_str().unwrap().to_string();
    d.start(&["attach", "--config", &cfg]);
    d.write("xnat.toml", &d.config(&format!("inside = [\"{tun}\"]"), ""));
    let out = d.xnat(&["reload", "-i", &ext]);
    let lines = error_lines(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{lines:?}");
    assert!(
        lines.len() == 1 && lines[0].contains(&format!("inside[0]: {why}")),
        "{lines:?}"
    );
    assert!(d.agent().try_exit().is_none(), "agent died on the reload");
    let on_tun = attached(&d.t.nat, &tun);
    assert!(on_tun.is_empty(), "programs on {tun}:\n{}", on_tun.raw);
    d.stop();
    assert_nothing_left(&d, "after SIGTERM");
}

// ---------------------------------------------------------------------------

fn set_layout_version(d: &DaemonTopo, v: u32) {
    let mut a = nat_userspace::tables::Tables::at(&d.pin_dir())
        .version()
        .unwrap_or_else(|e| panic!("{e:#}"));
    a.set(0, v, 0).unwrap();
}

/// SIGKILL the agent while a TCP connection runs: the connection keeps
/// working with no agent, a restarted `attach` with the same config adopts
/// the pinned state (same binding, counters continue), and a state of
/// another layout version is refused without touching it.
fn sigkill_and_adopt(tag: &str, mode: Ingress) {
    let mut d = DaemonTopo::new(tag, mode);
    let ext = d.ext().to_string();
    let cfg = d.write("xnat.toml", &d.config("", STATIC_MAP));
    let cfg = cfg.to_str().unwrap().to_string();
    d.start(&["attach", "--config", &cfg]);

    let mut flow = LongFlow::open(&d.t.cli, &d.t.srv, SocketAddr::from(sa(SRV, 5100)));
    assert_eq!(ip(flow.seen_by_server), IpAddr::from(POOL));
    flow.check("before SIGKILL");
    let tcp_flow = |d: &DaemonTopo| -> Option<Value> {
        d.json(&["flows", "-i", d.ext(), "--json", "--proto", "tcp"])
            .as_array()?
            .iter()
            .find(|f| f["remote"] == format!("{SRV}:5100"))
            .cloned()
    };
    let before = tcp_flow(&d).expect("the long flow's session");
    let egress_before = d.t.counter("egress_translated_packets");

    d.kill9();
    assert!(!d.t.attached().is_empty(), "programs gone after SIGKILL");
    flow.check("after SIGKILL, with no agent");
    assert!(
        d.t.counter("egress_translated_packets") > egress_before,
        "translation stopped without the agent"
    );
    let (code, _, err) = run_xnat(&d.t.nat, &["reload", "-i", &ext]);
    assert!(
        code == 1 && err.contains("no agent is running"),
        "{code} {err}"
    );

    // Another layout version is refused, and nothing changes.
    set_layout_version(&d, 99);
    let out = d.xnat(&["attach", "--config", &cfg]);
    let lines = error_lines(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{lines:?}");
    assert!(
        lines.len() == 1
            && lines[0].contains("layout version 99")
            && lines[0].contains(&format!("uses layout {}", nat_common::LAYOUT_VERSION)),
        "{lines:?}"
    );
    assert!(!d.t.attached().is_empty(), "refused adoption detached");
    flow.check("after a refused adoption");
    set_layout_version(&d, nat_common::LAYOUT_VERSION);

    let egress_mid = d.t.counter("egress_translated_packets");
    let ready = d.start(&["attach", "--config", &cfg]);
    assert!(
        ready.contains("adopted the running attachment (no changes)"),
        "{ready}"
    );
    flow.check("after adoption");
    let after = tcp_flow(&d).expect("the long flow's session after adoption");
    assert_eq!(after["public"], before["public"], "binding changed");
    assert_eq!(after["state"], "ESTABLISHED");
    assert!(
        d.t.counter("egress_translated_packets") > egress_mid,
        "counters restarted"
    );
    let st = d.json(&["status", "--json"]);
    let pid = d.agent().pid();
    assert!(
        st.as_array()
            .unwrap()
            .iter()
            .any(|r| r["interface"] == ext.as_str() && r["agent_pid"] == pid),
        "{st}"
    );
    // The adopted agent expires, reloads and detaches like any other.
    drop(flow);
    d.stop();
    d.t.assert_clean("after the adopted agent's SIGTERM");
}

#[test]
fn sigkill_and_adopt_tc() {
    sigkill_and_adopt("kilt", Ingress::Tc);
}

#[test]
fn sigkill_and_adopt_xdp() {
    sigkill_and_adopt("kilx", Ingress::Xdp);
}

// ---------------------------------------------------------------------------

/// Paired pooling survives a reload that grows the pool (RFC 4787 REQ-2):
/// an inside host with a live binding keeps its pool address for its new
/// bindings, although the hash over the larger pool now points elsewhere.
#[test]
fn reload_growing_the_pool_keeps_hosts_paired() {
    let mut d = DaemonTopo::new("grow", Ingress::Tc);
    let ext = d.ext().to_string();
    let cfg = d.write("xnat.toml", &d.config("", ""));
    d.start(&["attach", "--config", cfg.to_str().unwrap()]);
    assert_eq!(udp_source_seen(&d, CLI, 5301), IpAddr::from(POOL));

    // 203.0.113.0/24 is routed to the gateway: the new addresses need no
    // assignment.
    let grown = [
        POOL,
        Ipv4Addr::new(203, 0, 113, 3),
        Ipv4Addr::new(203, 0, 113, 4),
    ];
    let slot = nat_common::pool_index(u32::from_ne_bytes(CLI.octets()), grown.len() as u32);
    assert_ne!(
        slot, 0,
        "precondition: the hash over the grown pool moves {CLI}"
    );
    let list: Vec<String> = grown.iter().map(|a| format!("\"{a}\"")).collect();
    let text = d.config("", "").replace(
        &format!("pool = [\"{POOL}\"]"),
        &format!("pool = [{}]", list.join(", ")),
    );
    assert_ne!(text, d.config("", ""), "the config's pool line changed");
    d.write("xnat.toml", &text);
    let out = d.xnat_ok(&["reload", "-i", &ext]);
    assert!(out.contains("NAPT settings updated"), "{out}");
    assert_eq!(
        udp_source_seen(&d, CLI, 5302),
        IpAddr::from(POOL),
        "{CLI}, holding a binding on {POOL}, got a new one elsewhere after the pool grew"
    );
    // A host without bindings gets the hash's choice over the whole pool.
    let fresh = grown[nat_common::pool_index(u32::from_ne_bytes(CLI2.octets()), 3) as usize];
    assert_eq!(udp_source_seen(&d, CLI2, 5303), IpAddr::from(fresh));
}

/// `xnat reload` applies only the difference of a changed config while a
/// TCP connection runs: the removed static map stops matching, forwards
/// are swapped, NAPT settings change in place. A broken config or a
/// change that would strand live bindings is refused and changes nothing.
/// SIGHUP does the same.
#[test]
fn reload_applies_the_difference() {
    let mut d = DaemonTopo::new("rld", Ingress::Tc);
    let ext = d.ext().to_string();
    let cfg = d.write(
        "xnat.toml",
        &d.config(
            "",
            &format!("filtering = \"address\"\n{STATIC_MAP}\n{}", forward(8080)),
        ),
    );
    let cfg = cfg.to_str().unwrap().to_string();
    d.start(&["attach", "--config", &cfg]);
    let mut flow = LongFlow::open(&d.t.cli, &d.t.srv, SocketAddr::from(sa(SRV, 5200)));
    flow.check("before reload");
    assert_eq!(udp_source_seen(&d, CLI2, 5201), IpAddr::from(STATIC_PUB));

    // No static map, the forward moves from 8080 to 9090, other filtering,
    // TCP pickup off (the running connection's session exists: it goes on).
    d.write(
        "xnat.toml",
        &d.config(
            "",
            &format!(
                "filtering = \"endpoint-independent\"\ntcp-pickup = \"off\"\n{}",
                forward(9090)
            ),
        ),
    );
    let out = d.xnat_ok(&["reload", "-i", &ext]);
    for part in [
        "1 static map(s) removed",
        "1 forward(s) added",
        "1 forward(s) removed",
        "NAPT settings updated",
    ] {
        assert!(out.contains(part), "reload output lacks {part:?}: {out}");
    }
    flow.check("after reload");
    assert!(d.t.map_list().is_empty(), "static map still listed");
    // The removed static map stops matching: 10.0.0.3 is now masqueraded.
    assert_eq!(udp_source_seen(&d, CLI2, 5202), IpAddr::from(POOL));
    let fwd = d.json(&["forward", "list", "-i", &ext, "--json"]);
    assert_eq!(
        fwd,
        serde_json::json!([{"proto": "tcp", "public": "203.0.113.2:9090", "inside": "10.0.0.2:9090"}])
    );
    let inb = tcp_echo(&d.t.srv, &d.t.cli, sa(CLI, 9090), sa(POOL, 9090), 8 * 1024);
    assert_eq!(ip(inb.server_saw_peer), IpAddr::from(SRV));
    // Its port is in the pool's range: the SYN goes unanswered (RFC 5382
    // REQ-4), so a short wait tells (and keeps the long flow from idling
    // past its server's read timeout).
    let old = d.t.srv.in_ns(|| {
        TcpStream::connect_timeout(&SocketAddr::from(sa(POOL, 8080)), Duration::from_secs(1))
    });
    assert!(old.is_err(), "the removed forward still answers");
    let stats = d.t.stats();
    assert_eq!(
        stats["napt"]["filtering"], "endpoint-independent",
        "{stats}"
    );
    assert_eq!(stats["napt"]["tcp_pickup"], "off", "{stats}");

    // A broken file: refused with file, line and key; nothing changes.
    let broken = d.config("", &format!("pools = [\"1.2.3.4\"]\n{}", forward(9090)));
    d.write("xnat.toml", &broken);
    let out = d.xnat(&["reload", "-i", &ext]);
    let lines = error_lines(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{lines:?}");
    assert!(
        lines.len() == 1
            && lines[0].contains("nothing changed")
            && lines[0].contains("xnat.toml:8:1: napt.pools"),
        "{lines:?}"
    );
    // Removing the pool address the long flow uses: refused.
    d.write(
        "xnat.toml",
        &d.config("", &forward(9090).replace("203.0.113.2", "203.0.113.1"))
            .replace("pool = [\"203.0.113.2\"]", "pool = [\"203.0.113.1\"]"),
    );
    let out = d.xnat(&["reload", "-i", &ext]);
    let lines = error_lines(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{lines:?}");
    assert!(
        lines[0].contains("pool address 203.0.113.2 still carries"),
        "{lines:?}"
    );
    assert_eq!(
        d.json(&["forward", "list", "-i", &ext, "--json"]),
        fwd,
        "a refused reload changed the forwards"
    );
    flow.check("after refused reloads");
    assert!(d.agent().try_exit().is_none(), "agent died on a bad reload");

    // SIGHUP: the static map comes back.
    d.write(
        "xnat.toml",
        &d.config(
            "",
            &format!(
                "filtering = \"endpoint-independent\"\n{STATIC_MAP}\n{}",
                forward(9090)
            ),
        ),
    );
    d.agent().signal(libc::SIGHUP);
    wait_until(SOON, "SIGHUP to restore the static map", || {
        !d.t.map_list().is_empty()
    });
    assert_eq!(udp_source_seen(&d, CLI2, 5203), IpAddr::from(STATIC_PUB));
    flow.check("after SIGHUP");
    drop(flow);
    let (_, stderr) = d.stop();
    assert!(
        stderr.contains("reload 1:") && stderr.contains("reload 2 failed"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------

/// Prometheus scrape with curl while TCP and UDP traffic run.
#[test]
fn metrics_scrape_while_traffic_runs() {
    let mut d = DaemonTopo::new("met", Ingress::Tc);
    let ext = d.ext().to_string();
    let cfg = d.write(
        "xnat.toml",
        &d.config(&format!("metrics = \"{METRICS}\""), ""),
    );
    d.start(&["attach", "--config", cfg.to_str().unwrap()]);

    let mut flow = LongFlow::open(&d.t.cli, &d.t.srv, SocketAddr::from(sa(SRV, 5300)));
    flow.check("before scraping");
    // A UDP stream for the whole scrape, to two remote ports: the mapping's
    // first session and one in SESSIONS.
    let stop = Arc::new(AtomicBool::new(false));
    let sock =
        d.t.cli
            .in_ns(|| UdpSocket::bind(sa(CLI, 0)))
            .expect("UDP socket");
    let streamer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut port = 5301;
            while !stop.load(Ordering::Relaxed) {
                let _ = sock.send_to(&[0u8; 100], sa(SRV, port));
                port = if port == 5301 { 5302 } else { 5301 };
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // The first sweep has run once its histogram counts it.
    let text = wait_for(SOON, "an expiry sweep in the metrics", || {
        let (code, body) = d.scrape("/metrics");
        assert_eq!(code, 200, "{body}");
        (sample(&body, "xnat_expiry_sweep_duration_seconds_count", &[]).unwrap_or(0.0) >= 1.0)
            .then_some(body)
    });
    let iface = format!("interface=\"{ext}\"");
    let want = |name: &str, labels: &[&str]| -> f64 {
        let mut l = labels.to_vec();
        l.push(&iface);
        sample(&text, name, &l).unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{text}"))
    };
    assert_eq!(
        want(
            "xnat_build_info",
            &[&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    let egress = want("xnat_translated_packets_total", &["direction=\"egress\""]);
    assert!(egress > 0.0);
    // By default the sweep walks the mappings in the kernel.
    assert!(want("xnat_expiry_sweeps_total", &["walk=\"kernel\""]) >= 1.0);
    assert!(want("xnat_translated_bytes_total", &["direction=\"ingress\""]) > 0.0);
    assert_eq!(
        want("xnat_drops_total", &["reason=\"ports_exhausted\""]),
        0.0
    );
    assert!(want("xnat_bindings", &["proto=\"tcp\""]) >= 1.0);
    assert!(want("xnat_bindings", &["proto=\"udp\""]) >= 1.0);
    assert!(want("xnat_tcp_sessions", &["state=\"established\""]) >= 1.0);
    assert!(want("xnat_pool_ports_in_use", &["address=\"203.0.113.2\""]) >= 2.0);
    assert!(want("xnat_sessions", &["proto=\"udp\""]) >= 2.0);
    // SESSIONS holds the sessions beyond each mapping's first: the UDP
    // stream's second remote port.
    for map in ["NAPT_OUT", "NAPT_IN", "SESSIONS"] {
        let fill = want("xnat_map_fill_ratio", &[&format!("map=\"{map}\"")]);
        assert!(fill > 0.0 && fill < 1.0, "{map}: {fill}");
    }
    assert_eq!(want("xnat_events_lost_total", &[]), 0.0);

    // Live numbers: the stream is counted by the next scrape.
    wait_until(SOON, "egress packets to grow between scrapes", || {
        let (_, body) = d.scrape("/metrics");
        sample(
            &body,
            "xnat_translated_packets_total",
            &["direction=\"egress\""],
        )
        .is_some_and(|v| v > egress)
    });
    assert_eq!(d.scrape("/nope").0, 404);
    stop.store(true, Ordering::Relaxed);
    streamer.join().unwrap();
    flow.check("after scraping");
}

// ---------------------------------------------------------------------------

fn records<'a>(lines: &'a [Value], event: &str, proto: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|r| r["event"] == event && r["proto"] == proto)
        .collect()
}

/// An agent (TC ingress) started from a config file, with flags over it:
/// a translation log and a 2 s UDP timeout. Returns the topology, the
/// external interface and the log's path.
fn start_with_translation_log(tag: &str) -> (DaemonTopo, String, std::path::PathBuf) {
    let mut d = DaemonTopo::new(tag, Ingress::Tc);
    let ext = d.ext().to_string();
    let log = d.dir.join("bindings.jsonl");
    let cfg = d.write("xnat.toml", &d.config("", ""));
    d.start(&[
        "attach",
        "--config",
        cfg.to_str().unwrap(),
        "--log-bindings",
        log.to_str().unwrap(),
        "--timeout",
        "udp=2",
    ]);
    (d, ext, log)
}

/// By default the agent's sweeps walk the mappings in the kernel
/// (`xnat_expire`), and an idle binding goes.
#[test]
fn expiry_walk_in_the_kernel() {
    expiry_walk("ekw", &[], "kernel");
}

/// `--expiry-walk user`: the sweeps read the mappings out, and an idle
/// binding goes just the same.
#[test]
fn expiry_walk_in_user_space() {
    expiry_walk("euw", &["--expiry-walk", "user"], "user");
}

/// An agent started with `flags` expires an idle binding, and counts its
/// sweeps under `walk=WALK` only.
fn expiry_walk(tag: &str, flags: &[&str], walk: &str) {
    let mut d = DaemonTopo::new(tag, Ingress::Tc);
    let ext = d.ext().to_string();
    let cfg = d.write(
        "xnat.toml",
        &d.config(&format!("metrics = \"{METRICS}\""), ""),
    );
    let mut args = vec!["attach", "--config", cfg.to_str().unwrap()];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--timeout", "udp=2"]);
    d.start(&args);
    udp_exchange(
        &d.t.cli,
        &d.t.srv,
        sa(CLI, 4466),
        sa(SRV, 5420),
        sa(SRV, 5420),
        100,
    );
    let bound = |d: &DaemonTopo| {
        d.json(&["flows", "-i", &ext, "--json"])
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["inside"] == "10.0.0.2:4466")
    };
    assert!(bound(&d), "the binding is listed once made");
    wait_until(SOON, "the idle binding to expire", || !bound(&d));
    // Counted once the sweep that deleted it has reported.
    let iface = format!("interface=\"{ext}\"");
    let other = if walk == "kernel" { "user" } else { "kernel" };
    let body = wait_for(SOON, "the walk's expiry in the metrics", || {
        let (code, body) = d.scrape("/metrics");
        assert_eq!(code, 200, "{body}");
        let get = |name: &str, label: &str| sample(&body, name, &[label, &iface]).unwrap_or(0.0);
        (get("xnat_expiry_sweeps_total", &format!("walk=\"{walk}\"")) >= 1.0
            && get("xnat_expired_total", "kind=\"mapping\"") >= 1.0)
            .then_some(body)
    });
    assert_eq!(
        sample(
            &body,
            "xnat_expiry_sweeps_total",
            &[&format!("walk=\"{other}\""), &iface]
        )
        .unwrap_or(0.0),
        0.0,
        "no sweep walked in {other} space\n{body}"
    );
}

/// `xnat lookup`: the holder of a public endpoint from the live tables
/// while its binding lives, from the running agent's translation log once
/// it has expired; nobody before it was made; bad times refused.
#[test]
fn lookup_answers_now_and_after_expiry() {
    let (d, ext, log) = start_with_translation_log("lkp");
    udp_exchange(
        &d.t.cli,
        &d.t.srv,
        sa(CLI, 4455),
        sa(SRV, 5410),
        sa(SRV, 5410),
        100,
    );
    let created = |r: &Value| {
        r["proto"] == "udp" && r["inside"] == "10.0.0.2:4455" && r["event"] == "created"
    };
    wait_for_line(&log, "the UDP binding's created record", SOON, created);
    let public = json_lines(&log)
        .into_iter()
        .find(created)
        .and_then(|r| r["public"].as_str().map(str::to_string))
        .expect("the created record's public endpoint");
    let lookup = |extra: &[&str]| {
        let mut args = vec!["lookup", "-i", &ext, &public, "--proto", "udp"];
        args.extend_from_slice(extra);
        d.xnat(&args)
    };

    // Live: the tables answer.
    let out = lookup(&["--json"]);
    assert!(out.status.success(), "{out:?}");
    let live: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(live[0]["inside"], "10.0.0.2:4455", "{live}");
    assert_eq!(live[0]["source"], "live", "{live}");
    let while_live = nat_userspace::agent::clock::rfc3339(std::time::SystemTime::now());

    // Expired: nobody now, the log for the time it lived.
    wait_for_line(&log, "the UDP binding's expiry", SOON, |r| {
        r["proto"] == "udp" && r["inside"] == "10.0.0.2:4455" && r["event"] == "deleted"
    });
    let now = lookup(&[]);
    assert_eq!(now.status.code(), Some(1), "{now:?}");
    assert!(
        String::from_utf8_lossy(&now.stderr).contains(&format!("no binding held {public} now")),
        "{now:?}"
    );
    let then = lookup(&["--at", &while_live]);
    let text = String::from_utf8_lossy(&then.stdout);
    assert!(then.status.success(), "{then:?}");
    assert!(
        text.contains(&format!(
            "udp {public} -> 10.0.0.2:4455  binding (translation log)"
        )) && text.contains("until "),
        "{text}"
    );
    // Before it was made, and a time that is no time.
    assert_eq!(lookup(&["--at", "1h"]).status.code(), Some(1));

    // A port forward and a static 1:1 mapping hold theirs whatever the time.
    d.xnat_ok(&[
        "forward",
        "add",
        "-i",
        &ext,
        "tcp",
        "203.0.113.2:8080",
        "10.0.0.2:8080",
    ]);
    d.xnat_ok(&["map", "add", "-i", &ext, "10.0.0.3", "203.0.113.1"]);
    let fwd = d.xnat_ok(&["lookup", "-i", &ext, "203.0.113.2:8080"]);
    assert_eq!(
        fwd.trim(),
        "tcp 203.0.113.2:8080 -> 10.0.0.2:8080  port forward",
        "{fwd}"
    );
    let stat = d.xnat_ok(&["lookup", "-i", &ext, "203.0.113.1:443", "--at", "10m"]);
    assert_eq!(
        stat.trim(),
        "any 203.0.113.1:443 -> 10.0.0.3  static 1:1 mapping (every port)",
        "{stat}"
    );
    let bad = lookup(&["--at", "soonish"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
}

/// The translation log: created records from the data plane, deleted on
/// expiry and on flush; with the agent stopped (SIGSTOP) the ring overflows,
/// the data plane keeps translating and counts the lost records, and the
/// agent logs the missing bindings late once it runs again.
#[test]
fn translation_log() {
    let (mut d, ext, log) = start_with_translation_log("log");

    udp_exchange(
        &d.t.cli,
        &d.t.srv,
        sa(CLI, 4444),
        sa(SRV, 5400),
        sa(SRV, 5400),
        100,
    );
    let udp = |r: &Value| r["proto"] == "udp" && r["inside"] == "10.0.0.2:4444";
    // From the data plane's record (not found late by a sweep).
    wait_for_line(&log, "the UDP binding's created record", SOON, |r| {
        udp(r)
            && r["event"] == "created"
            && r["public"] == "203.0.113.2:4444"
            && r["late"].is_null()
    });
    wait_for_line(&log, "the UDP binding's expiry", SOON, |r| {
        udp(r) && r["event"] == "deleted" && r["reason"] == "expired"
    });

    let mut flow = LongFlow::open(&d.t.cli, &d.t.srv, SocketAddr::from(sa(SRV, 5401)));
    flow.check("TCP through the NAT");
    let inside = flow_inside(&d);
    let tcp = |r: &Value| r["proto"] == "tcp" && r["inside"] == inside.as_str();
    wait_for_line(&log, "the TCP binding's created record", SOON, |r| {
        tcp(r) && r["event"] == "created"
    });
    d.xnat_ok(&["flows", "flush", "-i", &ext, "--proto", "tcp"]);
    wait_for_line(&log, "the flushed TCP binding's deletion", SOON, |r| {
        tcp(r) && r["event"] == "deleted" && r["reason"] == "removed"
    });
    // The flow itself survives a flush: its next packet gets a new binding.
    flow.check("after flush");
    drop(flow);
    let first = json_lines(&log);
    for r in &first {
        assert!(
            r["time"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.len() >= 20),
            "{r}"
        );
    }

    // The reader lags: stop the agent, make more bindings than the ring
    // holds (64 KiB / 40 bytes per record).
    const N: u16 = 2500;
    let drops_before = drops(&d);
    let egress_before = d.t.counter("egress_translated_packets");
    d.agent().signal(libc::SIGSTOP);
    // All sockets open at once, so every one has its own port.
    let socks: Vec<UdpSocket> = d.t.cli.in_ns(|| {
        (0..N)
            .map(|_| {
                let s = UdpSocket::bind(sa(CLI, 0)).unwrap();
                s.send_to(b"x", sa(SRV, 5402)).unwrap();
                s
            })
            .collect()
    });
    let ports: Vec<u16> = socks
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect();
    wait_until(SOON, "all datagrams translated", || {
        d.t.counter("egress_translated_packets") >= egress_before + N as u64
    });
    let lost = d.t.counter("events_lost");
    assert!(lost > 0, "the ring never overflowed");
    assert_eq!(
        drops(&d),
        drops_before,
        "packets dropped while the reader lagged"
    );
    d.agent().signal(libc::SIGCONT);
    // Every binding gets its created record: from the ring, or late.
    wait_until(SOON, "created records for all bindings", || {
        let lines = json_lines(&log);
        let created: std::collections::HashSet<String> = records(&lines, "created", "udp")
            .iter()
            .filter_map(|r| r["inside"].as_str().map(str::to_string))
            .collect();
        ports
            .iter()
            .all(|p| created.contains(&format!("{CLI}:{p}")))
    });
    // Each binding created exactly once: the ring's records as they came,
    // the lost ones late.
    let lines = json_lines(&log);
    let ours: Vec<&Value> = records(&lines, "created", "udp")
        .into_iter()
        .filter(|r| ports.iter().any(|p| r["inside"] == format!("{CLI}:{p}")))
        .collect();
    assert_eq!(ours.len(), N as usize, "duplicate created records");
    let late = ours.iter().filter(|r| r["late"] == true).count() as u64;
    assert_eq!(late, lost, "records lost vs logged late");
    assert_eq!(
        json_counter(&d.t.stats(), "events_lost"),
        Some(lost),
        "events lost while the agent ran"
    );
}

/// The inside endpoint of the only TCP flow.
fn flow_inside(d: &DaemonTopo) -> String {
    let flows = d.json(&["flows", "-i", d.ext(), "--json", "--proto", "tcp"]);
    flows[0]["inside"].as_str().expect("a TCP flow").to_string()
}

/// The sum of all drop counters.
fn drops(d: &DaemonTopo) -> u64 {
    let s = d.t.stats();
    s["counters"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("drop"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum()
}

// ---------------------------------------------------------------------------

/// Layout 4 end to end: a binding's first session (held in the mapping)
/// expires while another session keeps the binding alive: `xnat flows`
/// stops listing it, the binding keeps its public endpoint, a new packet
/// to the first remote makes a new session; once everything is idle the
/// binding goes, with its deletion in the translation log. No sweep fails
/// on the way.
#[test]
fn first_session_expires_while_the_binding_lives() {
    let (mut d, ext, log) = start_with_translation_log("fst");
    let sock =
        d.t.cli
            .in_ns(|| UdpSocket::bind(sa(CLI, 4600)))
            .expect("UDP socket");
    let (first, other) = (format!("{SRV}:5600"), format!("{SRV}:5601"));
    let remotes = |d: &DaemonTopo| -> Vec<(String, String)> {
        let flows = d.json(&["flows", "-i", &ext, "--json", "--inside", "10.0.0.2"]);
        let mut v: Vec<(String, String)> = flows
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["inside"] == "10.0.0.2:4600")
            .map(|f| {
                (
                    f["remote"].as_str().unwrap().to_string(),
                    f["public"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let public = "203.0.113.2:4600".to_string();
    sock.send_to(b"first", sa(SRV, 5600)).unwrap();
    sock.send_to(b"other", sa(SRV, 5601)).unwrap();
    wait_until(SOON, "both sessions listed", || {
        remotes(&d)
            == vec![
                (first.clone(), public.clone()),
                (other.clone(), public.clone()),
            ]
    });
    // Only the other remote keeps talking: the first session idles out,
    // the binding lives on.
    let talk = |d: &DaemonTopo, what: &str, want: Vec<(String, String)>| {
        wait_until(SOON, what, || {
            sock.send_to(b"other", sa(SRV, 5601)).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            remotes(d) == want
        });
    };
    talk(
        &d,
        "the first session to expire, the other to stay",
        vec![(other.clone(), public.clone())],
    );
    let napt = |d: &DaemonTopo, what: &str| d.t.stats()["napt"][what].as_u64();
    assert_eq!(napt(&d, "mappings"), Some(1));
    assert_eq!(napt(&d, "sessions"), Some(1));
    // The first remote again: a new session on the same binding.
    sock.send_to(b"first again", sa(SRV, 5600)).unwrap();
    talk(
        &d,
        "a new session with the first remote",
        vec![
            (first.clone(), public.clone()),
            (other.clone(), public.clone()),
        ],
    );
    assert_eq!(d.t.counter("napt_mappings_created"), 1);
    // Everything idle: the binding goes.
    wait_until(SOON, "the binding to expire", || {
        remotes(&d).is_empty() && napt(&d, "mappings") == Some(0)
    });
    let udp = |r: &Value| r["proto"] == "udp" && r["inside"] == "10.0.0.2:4600";
    wait_for_line(&log, "the binding's expiry", SOON, |r| {
        udp(r) && r["event"] == "deleted" && r["reason"] == "expired"
    });
    let records = json_lines(&log);
    let deleted = records
        .iter()
        .filter(|r| udp(r) && r["event"] == "deleted")
        .count();
    assert_eq!(deleted, 1, "{records:?}");
    let (_, stderr) = d.stop();
    assert!(!stderr.contains("sweep failed"), "{stderr}");
}

// ---------------------------------------------------------------------------

/// Every listing has `--json`; `flows flush` deletes by inside host and by
/// protocol but keeps forwards; exit codes 0/1/2/3.
#[test]
fn json_flush_and_exit_codes() {
    let mut d = DaemonTopo::new("cli", Ingress::Tc);
    let ext = d.ext().to_string();
    let cfg = d.write("xnat.toml", &d.config("", &forward(8080)));
    d.start(&["attach", "--config", cfg.to_str().unwrap()]);

    udp_exchange(
        &d.t.cli,
        &d.t.srv,
        sa(CLI, 4000),
        sa(SRV, 5500),
        sa(SRV, 5500),
        50,
    );
    udp_exchange(
        &d.t.cli,
        &d.t.srv,
        sa(CLI2, 4001),
        sa(SRV, 5501),
        sa(SRV, 5501),
        50,
    );

    for args in [
        vec!["map", "list", "-i", &ext, "--json"],
        vec!["forward", "list", "-i", &ext, "--json"],
        vec!["flows", "-i", &ext, "--json"],
        vec!["status", "--json"],
    ] {
        assert!(d.json(&args).is_array(), "`xnat {}`", args.join(" "));
    }
    assert!(d.t.stats()["counters"].is_object());
    let flows = d.json(&["flows", "-i", &ext, "--json"]);
    assert_eq!(flows.as_array().unwrap().len(), 2, "{flows}");

    let out = d.json(&[
        "flows", "flush", "-i", &ext, "--inside", "10.0.0.3", "--json",
    ]);
    assert_eq!(out, serde_json::json!({"sessions": 1, "mappings": 1}));
    let flows = d.json(&["flows", "-i", &ext, "--json"]);
    let left: Vec<&str> = flows
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["inside"].as_str().unwrap())
        .collect();
    assert_eq!(left, vec!["10.0.0.2:4000"]);
    let out = d.json(&["flows", "flush", "-i", &ext, "--proto", "udp", "--json"]);
    assert_eq!(out, serde_json::json!({"sessions": 1, "mappings": 1}));
    assert_eq!(
        d.json(&["flows", "-i", &ext, "--json"]),
        serde_json::json!([])
    );
    assert_eq!(
        d.json(&["forward", "list", "-i", &ext, "--json"])
            .as_array()
            .unwrap()
            .len(),
        1,
        "flush removed the forward"
    );
    let s = d.t.stats();
    assert_eq!(
        s["napt"]["mappings"], 1,
        "only the forward's mapping is left: {s}"
    );

    // Exit codes.
    let (code, _, err) = run_xnat(&d.t.nat, &["flows", "-i", "nosuch0"]);
    assert_eq!(code, 3, "not attached: {err}");
    let (code, _, err) = run_xnat(&d.t.nat, &["attach", &ext, "--no-such-flag"]);
    assert_eq!(code, 2, "usage: {err}");
    let (code, _, err) = run_xnat(&d.t.nat, &["check", "--config", "/nonexistent/x.toml"]);
    assert!(
        code == 1 && err.contains("/nonexistent/x.toml"),
        "{code} {err}"
    );
    let (code, out, _) = run_xnat(&d.t.nat, &["reload", "-i", &ext]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reloaded: no changes"), "{out}");
    d.stop();
    let (code, _, err) = run_xnat(&d.t.nat, &["stats", "-i", &ext]);
    assert_eq!(code, 3, "after detach: {err}");
}

/// `n` live bindings as the data plane makes them ([`Entries::bulk`]),
/// stamped `now`, written into the pinned mapping tables in `dir`.
fn fill_live_bindings(dir: &std::path::Path, n: u32, now: u64) {
    use nat_userspace::{tables::Tables, tables::batch};
    let e = Entries::bulk(n, now);
    let tables = Tables::at(dir);
    let out = tables.napt_out().expect("opening NAPT_OUT");
    let inb = tables.napt_in().expect("opening NAPT_IN");
    batch::update_all(out.fd(), &e.out.0, &e.out.1).expect("filling NAPT_OUT");
    batch::update_all(inb.fd(), &e.inb.0, &e.inb.1).expect("filling NAPT_IN");
}

/// With half a million live bindings a sweep takes a good part of a
/// second (debug build); run every second it would keep the agent busy
/// half the time. The agent then
/// spaces its sweeps out (`expiry::ticks_between_sweeps`: ten times the
/// sweep, in whole seconds): over a window, sweeping takes at most about a
/// tenth of it, where every-second sweeps would take half.
#[test]
fn long_sweeps_are_spaced_out() {
    // Half a million: sweeps of a good part of a second, scrapes (which
    // read the tables too) well within curl's 5 s.
    const BINDINGS: u32 = 1 << 19;
    const WINDOW: Duration = Duration::from_secs(15);
    let mut d = DaemonTopo::new("swp", Ingress::Tc);
    let ext = d.ext().to_string();
    let (pool, max) = (POOL.to_string(), BINDINGS.to_string());
    d.start(&[
        "attach",
        &ext,
        "--ingress",
        "tc",
        "--pool",
        &pool,
        "--internal",
        "10.0.0.0/24",
        "--max-mappings",
        &max,
        "--metrics",
        METRICS,
    ]);
    // Sweeps so far: how many, and their total time (s).
    let sweeps = |d: &DaemonTopo| -> (f64, f64) {
        let (code, body) = d.scrape("/metrics");
        assert_eq!(code, 200, "{body}");
        let get = |name: &str| sample(&body, name, &[]).unwrap_or(0.0);
        (
            get("xnat_expiry_sweep_duration_seconds_count"),
            get("xnat_expiry_sweep_duration_seconds_sum"),
        )
    };
    wait_until(SOON, "a first sweep", || sweeps(&d).0 >= 1.0);

    fill_live_bindings(
        &d.pin_dir(),
        BINDINGS,
        nat_userspace::agent::clock::now_ns(),
    );
    // The window: two scrapes only, at its ends (a scrape reads the tables
    // too, in the agent's thread, and would hold the sweeps up).
    let started = Instant::now();
    let (c0, s0) = sweeps(&d);
    std::thread::sleep(WINDOW);
    let (c1, s1) = sweeps(&d);
    let window = started.elapsed().as_secs_f64();
    let (count, busy) = (c1 - c0, s1 - s0);
    assert!(count >= 1.0, "no sweep in {window:.1} s");
    let each = busy / count;
    assert!(
        each >= 0.1,
        "a sweep of half a million bindings took only {each:.3} s here: the agent does not space \
         sweeps that short out, so this test cannot see it"
    );
    // Spaced out: ten times a sweep apart, so sweeping takes about a tenth
    // of the time (every second it would be over a third here), and far
    // fewer than one sweep a second.
    assert!(
        busy / window <= 0.2 && count <= window / 2.0,
        "{count} sweeps of {each:.3} s in {window:.1} s ({:.0} % of the time): expected one \
         every {} s",
        100.0 * busy / window,
        (10.0 * each).ceil().clamp(1.0, 10.0)
    );
    // The scrape counts them all (per series, not per entry).
    let (_, body) = d.scrape("/metrics");
    assert_eq!(
        sample(&body, "xnat_bindings", &["proto=\"udp\""]),
        Some(BINDINGS as f64)
    );
    assert_eq!(
        sample(
            &body,
            "xnat_pool_ports_in_use",
            &["address=\"198.18.0.63\""]
        ),
        Some((BINDINGS / 64) as f64)
    );
}

/// `--ipfix`: a real collector (nfdump's nfcapd, in the gateway's
/// namespace) receives the events, and nfdump decodes them as RFC 8158
/// records: "NAT44 BIB create" and "NAT44 BIB delete" naming the inside
/// endpoint and the public one the server saw, "Quota Exceeded" for a host
/// at --max-ports-per-host, "NAT ports exhausted" for a host refused for
/// want of a port. The agent counts what it sent in its metrics.
#[test]
fn ipfix_records_decode_in_a_real_collector() {
    let mut d = DaemonTopo::new("ipx", Ingress::Tc);
    let collector = Nfcapd::start(&d);

    // One public port, one per host: the second flow of 10.0.0.2 meets
    // its cap, 10.0.0.3 finds the port taken.
    let cfg = d.write(
        "xnat.toml",
        &d.config(
            &format!("metrics = \"{METRICS}\""),
            "ports = \"40000-40000\"\nmax-ports-per-host = 1",
        ),
    );
    d.start(&[
        "attach",
        "--config",
        cfg.to_str().unwrap(),
        "--ipfix",
        COLLECTOR,
        "--timeout",
        "udp=2",
    ]);
    let seen = udp_exchange(
        &d.t.cli,
        &d.t.srv,
        sa(CLI, 4477),
        sa(SRV, 5430),
        sa(SRV, 5430),
        100,
    );
    let sent = |d: &DaemonTopo, event: &str| -> f64 {
        let (code, body) = d.scrape("/metrics");
        assert_eq!(code, 200, "{body}");
        let iface = format!("interface=\"{}\"", d.ext());
        sample(
            &body,
            "xnat_ipfix_records_total",
            &[&format!("event=\"{event}\""), &iface],
        )
        .unwrap_or(0.0)
    };
    // Refused flows, sent until the agent has exported each refusal (the
    // records go out before the metrics count them).
    let refused = |d: &DaemonTopo, from: std::net::Ipv4Addr, event: &str| {
        let sock = d.t.cli.in_ns(|| UdpSocket::bind(sa(from, 4478))).unwrap();
        wait_until(SOON, event, || {
            let _ = sock.send_to(&[0u8; 32], sa(SRV, 5431));
            sent(d, event) >= 1.0
        });
    };
    refused(&d, CLI, "quota-exceeded");
    refused(&d, CLI2, "ports-exhausted");
    // And the binding's expiry.
    wait_until(SOON, "the binding's expiry exported", || {
        sent(&d, "nat44-bib-delete") >= 1.0
    });
    assert!(sent(&d, "nat44-bib-create") >= 1.0);
    let (out, records) = collector.records(&d);
    let (_, stderr) = d.stop();
    assert!(!stderr.contains("IPFIX to"), "send errors: {stderr}");
    let public = match seen.server_saw_src {
        SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    // nfdump prints the translated port as a string.
    let port = public.port().to_string();
    let pool = public.ip().to_string();
    for event in ["NAT44 BIB create", "NAT44 BIB delete"] {
        let found = records.iter().any(|r| {
            r["nat_event"] == event
                && r["proto"] == 17
                && r["src4_addr"] == "10.0.0.2"
                && r["src_port"] == 4477
                && r["src4_xlt_ip"] == pool
                && r["src_xlt_port"].as_str() == Some(port.as_str())
        });
        assert!(
            found,
            "no {event} record for 10.0.0.2:4477 -> {public} in\n{out}"
        );
    }
    assert!(
        records
            .iter()
            .any(|r| r["nat_event"] == "Quota Exceeded" && r["src4_addr"] == "10.0.0.2"),
        "no quota record for 10.0.0.2 in\n{out}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["nat_event"] == "NAT ports exhausted"
                && r["src4_addr"] == "10.0.0.3"
                && r["src4_xlt_ip"] == pool
                && r["proto"] == 17),
        "no ports-exhausted record for 10.0.0.3 on {pool} in\n{out}"
    );
}
