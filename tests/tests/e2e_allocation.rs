//! End-to-end tests of the carrier-grade allocation modes (root):
//! deterministic NAT (RFC 7422) with 64 inside addresses on one namespace
//! through two pool addresses — every host's public endpoint lies in the
//! range the layout gives it, `xnat check` prints that layout, `xnat
//! lookup` names the host of a public port from the tables, from the
//! layout once the binding has expired, and from a config file alone —
//! and layouts that leave a host too few ports are refused. Port block
//! allocation with the same 64 hosts: each reserves a block on its paired
//! pool address and leaves from a port of it, a host at its block cap gets
//! no more ports, the blocks show in `xnat flows --blocks`, `xnat stats`,
//! the metrics, the JSON log and IPFIX (decoded by nfdump's nfcapd), they
//! are released once unused past the hold-down, and `xnat lookup` names a
//! block's holder now and, from the log, after its release.
//!
//! Topology: `xnat_tests::topology` (cli — nat — rtr — srv 198.51.100.2;
//! rtr routes 203.0.113.0/24 to the gateway, so both pool addresses are
//! reachable), with 64 more addresses on the client.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use nat_common::deterministic::port_probe;
use serde_json::Value;
use xnat_tests::daemon_topo::{COLLECTOR, DaemonTopo, METRICS, Nfcapd, json_lines, sample};
use xnat_tests::netns::describe;
use xnat_tests::topology::{CLI, Ingress, SRV, json_counter};
use xnat_tests::traffic::sa;
use xnat_tests::wait::{SOON, wait_until};

const POOL_A: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const POOL_B: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 3);
/// Inside hosts 10.0.0.100-163: host numbers 100-163 of 10.0.0.0/24, on
/// both sides of the two pool addresses' split at 128.
const FIRST_HOST: u8 = 100;
const HOSTS: u8 = 64;
/// 256 inside addresses over two pool addresses: 128 per address, each
/// with 64512 / 128 = 504 ports.
const PER_ADDR: u32 = 128;
const PORTS_EACH: u32 = 504;
/// The clients' source port: inside the range of host 135 (ports
/// 4552-5055 on the second address), which must keep it.
const SRC_PORT: u16 = 5000;
const KEEPS_ITS_PORT: u8 = 135;
const SRV_PORT: u16 = 6100;

/// The layout's pool address and first port of host `n` of 10.0.0.0/24.
fn share(n: u8) -> (Ipv4Addr, u16) {
    let n = u32::from(n);
    let public = if n / PER_ADDR == 0 { POOL_A } else { POOL_B };
    (public, (1024 + (n % PER_ADDR) * PORTS_EACH) as u16)
}

fn host(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

/// Gives the client its 64 more addresses.
fn add_hosts(d: &DaemonTopo) {
    for i in 0..HOSTS {
        d.t.cli.ip(&[
            "addr",
            "add",
            &format!("{}/24", host(FIRST_HOST + i)),
            "dev",
            "eth0",
        ]);
    }
}

fn config(d: &DaemonTopo, napt_extra: &str) -> String {
    format!(
        "interface = \"{}\"\ningress = \"tc\"\n\n[napt]\ninternal = [\"10.0.0.0/24\"]\n\
         pool = [\"{POOL_B}\", \"{POOL_A}\"]\nallocation = \"deterministic\"\n{napt_extra}\n",
        d.ext()
    )
}

/// One datagram from each host to srv; the source the server saw for each.
fn sources_seen(d: &DaemonTopo) -> BTreeMap<u8, SocketAddrV4> {
    let server =
        d.t.srv
            .in_ns(|| UdpSocket::bind(sa(SRV, SRV_PORT)))
            .expect("binding the server");
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let clients: Vec<UdpSocket> = (0..HOSTS)
        .map(|i| {
            d.t.cli
                .in_ns(|| UdpSocket::bind(sa(host(FIRST_HOST + i), SRC_PORT)))
                .expect("binding a client")
        })
        .collect();
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + SOON;
    let mut buf = [0u8; 64];
    // Bounded: each round resends what has not arrived yet.
    while seen.len() < usize::from(HOSTS) && Instant::now() < deadline {
        for (i, c) in clients.iter().enumerate() {
            let n = FIRST_HOST + i as u8;
            if !seen.contains_key(&n) {
                let _ = c.send_to(&[n], sa(SRV, SRV_PORT));
            }
        }
        while let Ok((len, from)) = server.recv_from(&mut buf) {
            if let (1, SocketAddr::V4(from)) = (len, from) {
                seen.insert(buf[0], from);
            }
        }
    }
    assert_eq!(
        seen.len(),
        usize::from(HOSTS),
        "datagrams of only {} of {HOSTS} hosts arrived",
        seen.len()
    );
    seen
}

fn lookup(d: &DaemonTopo, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["lookup", "--json", "--proto", "udp"];
    all.extend_from_slice(args);
    d.json(&all)
}

#[test]
fn deterministic_ranges_for_64_hosts_through_two_pool_addresses() {
    let mut d = DaemonTopo::new("det", Ingress::Tc);
    add_hosts(&d);
    let cfg = d.write("det.toml", &config(&d, ""));
    let cfg_path = cfg.to_str().unwrap().to_string();
    let elsewhere = d.write(
        "elsewhere.toml",
        &config(&d, "").replace(
            &format!("interface = \"{}\"", d.ext()),
            "interface = \"wan9\"",
        ),
    );
    let elsewhere_path = elsewhere.to_str().unwrap().to_string();

    // The layout, before attaching.
    let out = d.xnat_ok(&["check", "--config", &cfg_path]);
    assert!(
        out.contains(
            "deterministic allocation: 256 inside address(es), 128 per pool address, 504 ports each"
        ),
        "{out}"
    );
    let (public, lo) = share(KEEPS_ITS_PORT);
    let row = format!(
        "{:<16} {:<16} {}-{}",
        host(KEEPS_ITS_PORT),
        public,
        lo,
        lo + 503
    );
    assert!(out.lines().any(|l| l == row), "no line {row:?} in\n{out}");

    d.start(&[
        "attach",
        "--config",
        &cfg_path,
        "--timeout",
        "udp=2",
        "--log-bindings",
        "-",
    ]);
    let seen = sources_seen(&d);
    for (&n, src) in &seen {
        let (public, lo) = share(n);
        let hi = lo + (PORTS_EACH - 1) as u16;
        assert_eq!(
            *src.ip(),
            public,
            "host {} left from the wrong address",
            host(n)
        );
        assert!(
            (lo..=hi).contains(&src.port()),
            "host {} left from port {}, outside its range {lo}-{hi}",
            host(n),
            src.port()
        );
        if n == KEEPS_ITS_PORT {
            assert_eq!(
                src.port(),
                SRC_PORT,
                "the inside port lies in its range and is free"
            );
        } else {
            // Not the inside port: the first port of the fixed sequence
            // (all free), a function of the inside port and the layout.
            assert_eq!(
                src.port(),
                port_probe(lo, hi, SRC_PORT, true, 17, 0),
                "host {}: not the first port of its sequence",
                host(n)
            );
        }
    }
    // Both pool addresses carried some.
    assert!(seen.values().any(|s| *s.ip() == POOL_A) && seen.values().any(|s| *s.ip() == POOL_B));

    // Who had it: from the live binding (inside endpoint, with its port)...
    let ext = d.ext().to_string();
    let probe = seen[&KEEPS_ITS_PORT];
    let endpoint = probe.to_string();
    let live = lookup(&d, &["-i", &ext, &endpoint]);
    assert_eq!(
        live[0]["inside"],
        format!("{}:{SRC_PORT}", host(KEEPS_ITS_PORT)),
        "{live}"
    );
    assert_eq!(live[0]["source"], "live", "{live}");

    // ... from the layout once it has expired (no translation log read)...
    wait_until(SOON, "the bindings to expire", || {
        d.json(&["flows", "-i", &ext, "--json"])
            .as_array()
            .is_some_and(|a| a.is_empty())
    });
    for n in [FIRST_HOST, KEEPS_ITS_PORT, FIRST_HOST + HOSTS - 1] {
        let e = seen[&n].to_string();
        let computed = lookup(&d, &["-i", &ext, &e, "--at", "1m"]);
        assert_eq!(
            computed[0]["inside"],
            host(n).to_string(),
            "{e}: {computed}"
        );
        assert_eq!(computed[0]["source"], "deterministic", "{computed}");
        let (_, lo) = share(n);
        assert_eq!(
            computed[0]["ports"],
            format!("{lo}-{}", lo + 503),
            "{computed}"
        );
        // ... and from the config file alone, on a machine without the
        // gateway's interface too.
        let from_file = lookup(&d, &["--config", &cfg_path, &e]);
        assert_eq!(from_file[0]["inside"], host(n).to_string(), "{from_file}");
        let elsewhere = lookup(&d, &["--config", &elsewhere_path, &e]);
        assert_eq!(elsewhere[0]["inside"], host(n).to_string(), "{elsewhere}");
    }
    // Stateless: with the tables empty, as on a gateway that never saw
    // these flows, every host gets the very same public endpoint again.
    let again = sources_seen(&d);
    assert_eq!(again, seen, "recreated bindings moved");

    // A port below every range, and an address outside the pool: nobody.
    for e in [format!("{POOL_B}:80"), "203.0.113.9:2000".to_string()] {
        let out = d.xnat(&["lookup", "-i", &ext, "--config", &cfg_path, &e]);
        assert!(
            !out.status.success(),
            "{e}: someone holds it? {}",
            describe(out.status)
        );
    }
    let (_, stderr) = d.stop();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn layouts_that_starve_a_host_are_refused() {
    let d = DaemonTopo::new("dsv", Ingress::Tc);
    let refused = |name: &str, napt_extra: &str, internal: Option<&str>, expect: &[&str]| {
        let mut text = config(&d, napt_extra);
        if let Some(i) = internal {
            text = text.replace("[\"10.0.0.0/24\"]", i);
        }
        let path = d.write(name, &text);
        let out = d.xnat(&["check", "--config", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{name} accepted:\n{text}");
        for e in expect {
            assert!(err.contains(e), "{name}: {e:?} not in {err}");
        }
        // And attach refuses it too, attaching nothing.
        let out = d.xnat(&["attach", "--config", path.to_str().unwrap()]);
        assert!(!out.status.success(), "{name}: attach accepted it");
        assert!(
            d.t.attached().is_empty(),
            "{name}: something stayed attached"
        );
    };
    // 16M hosts over two addresses.
    refused(
        "wide.toml",
        "",
        Some("[\"10.0.0.0/8\"]"),
        &["deterministic allocation", "narrow --internal"],
    );
    // 504 ports each, fewer than asked.
    refused(
        "min.toml",
        "min-ports-per-host = 1000",
        None,
        &["504 ports", "fewer than --min-ports-per-host 1000"],
    );
    // 1000 ports each: only 64 per address fit, 128 needed.
    refused(
        "pph.toml",
        "ports-per-host = 1000",
        None,
        &["leave room for 128 of the 256 inside addresses"],
    );
    // A per-host cap means nothing here.
    refused(
        "cap.toml",
        "max-ports-per-host = 10",
        None,
        &["does not apply to deterministic allocation"],
    );
    refused(
        "overlap.toml",
        "",
        Some("[\"10.0.0.0/24\", \"10.0.0.128/25\"]"),
        &["overlaps 10.0.0.0/24"],
    );
}

/// Block allocation: blocks of 64 ports, at most two per host, released a
/// second after their last binding.
const BLOCK_SIZE: u16 = 64;
const MAX_BLOCKS: usize = 2;

fn block_config(d: &DaemonTopo) -> String {
    format!(
        "interface = \"{}\"\ningress = \"tc\"\nmetrics = \"{METRICS}\"\n\n[napt]\n\
         internal = [\"10.0.0.0/24\"]\npool = [\"{POOL_B}\", \"{POOL_A}\"]\n\
         allocation = \"block\"\nblock-size = {BLOCK_SIZE}\nmax-blocks-per-host = {MAX_BLOCKS}\n\
         block-hold-down = 1\n",
        d.ext()
    )
}

/// `xnat flows --blocks --json`.
fn held_blocks(d: &DaemonTopo) -> Vec<Value> {
    let ext = d.ext().to_string();
    d.json(&["flows", "-i", &ext, "--blocks", "--json"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn metric(d: &DaemonTopo, name: &str, labels: &[&str]) -> f64 {
    let (code, body) = d.scrape("/metrics");
    assert_eq!(code, 200, "{body}");
    sample(&body, name, labels).unwrap_or(0.0)
}

#[test]
fn port_blocks_for_64_hosts_through_two_pool_addresses() {
    let mut d = DaemonTopo::new("blk", Ingress::Tc);
    add_hosts(&d);
    let collector = Nfcapd::start(&d);
    // The same messages for Wireshark's decoder, which reads the port
    // ranges nfdump drops.
    let pcap = d.dir.join("ipfix.pcap");
    let mut dump = d.t.nat.spawn(&[
        "tcpdump",
        "-n",
        "-i",
        "lo",
        "--immediate-mode",
        "-w",
        pcap.to_str().unwrap(),
        "udp port 4739",
    ]);
    wait_until(SOON, "tcpdump to listen", || {
        dump.stderr().contains("listening on")
    });

    let cfg = d.write("blk.toml", &block_config(&d));
    let cfg_path = cfg.to_str().unwrap().to_string();
    let out = d.xnat_ok(&["check", "--config", &cfg_path]);
    assert!(
        out.contains(
            "block allocation: 1008 blocks of 64 ports per pool address, 2016 in all; \
             an inside address holds 1 to 2 (64 to 128 ports)"
        ),
        "{out}"
    );
    let log = d.dir.join("blocks.log");
    d.start(&[
        "attach",
        "--config",
        &cfg_path,
        "--timeout",
        "udp=3",
        "--log-bindings",
        log.to_str().unwrap(),
        "--ipfix",
        COLLECTOR,
    ]);
    let ext = d.ext().to_string();

    // One flow per host: one block each, on the host's pool address,
    // holding the public port it left from (parity kept: 5000 is even).
    let seen = sources_seen(&d);
    let blocks = held_blocks(&d);
    assert_eq!(blocks.len(), usize::from(HOSTS), "{blocks:?}");
    let block_of = |n: u8| -> Value {
        let mine: Vec<&Value> = blocks
            .iter()
            .filter(|b| b["inside"] == host(n).to_string())
            .collect();
        assert_eq!(mine.len(), 1, "host {}: {mine:?}", host(n));
        mine[0].clone()
    };
    for (&n, src) in &seen {
        let b = block_of(n);
        let (lo, hi) = (
            b["first_port"].as_u64().unwrap(),
            b["last_port"].as_u64().unwrap(),
        );
        assert_eq!(hi - lo + 1, u64::from(BLOCK_SIZE), "{b}");
        assert_eq!(b["public"], src.ip().to_string(), "host {}: {b}", host(n));
        let port = u64::from(src.port());
        assert!(
            (lo..=hi).contains(&port),
            "host {} left from {src}, outside its block {b}",
            host(n)
        );
        assert_eq!(
            port % 2,
            0,
            "host {} lost its port's parity: {src}",
            host(n)
        );
        assert_eq!(b["bindings"], 1, "{b}");
    }
    // The block holding port 5000 went to the first host that wanted it on
    // each pool address used: that host kept its port.
    let addresses: std::collections::BTreeSet<Ipv4Addr> = seen.values().map(|s| *s.ip()).collect();
    let kept = seen.values().filter(|s| s.port() == SRC_PORT).count();
    assert_eq!(kept, addresses.len(), "{seen:?}");

    let stats = d.json(&["stats", "-i", &ext, "--json"]);
    assert_eq!(stats["napt"]["blocks"]["held"], u64::from(HOSTS), "{stats}");
    assert_eq!(
        json_counter(&stats["counters"], "napt_blocks_allocated"),
        Some(u64::from(HOSTS)),
        "{stats}"
    );
    let iface = format!("interface=\"{ext}\"");
    let held: f64 = [POOL_A, POOL_B]
        .iter()
        .map(|a| {
            let label = format!("address=\"{a}\"");
            metric(&d, "xnat_port_blocks_held", &[&label, &iface])
        })
        .sum();
    assert_eq!(held, f64::from(HOSTS));

    // A host at its cap: two blocks, at most 128 ports, then refused.
    let socks: Vec<UdpSocket> = (0..150u16)
        .map(|i| {
            d.t.cli
                .in_ns(|| UdpSocket::bind(sa(CLI, 20000 + i)))
                .expect("binding a client")
        })
        .collect();
    for s in &socks {
        s.send_to(&[0], sa(SRV, SRV_PORT)).unwrap();
    }
    let capped = |d: &DaemonTopo| {
        let stats = d.json(&["stats", "-i", &ext, "--json"]);
        json_counter(&stats["counters"], "drop_host_port_cap").unwrap_or(0)
    };
    wait_until(SOON, "a refusal at the block cap", || capped(&d) > 0);
    let flows = d.json(&["flows", "-i", &ext, "--json", "--inside", &CLI.to_string()]);
    let bound = flows.as_array().map_or(0, Vec::len);
    let theirs: Vec<Value> = held_blocks(&d)
        .into_iter()
        .filter(|b| b["inside"] == CLI.to_string())
        .collect();
    assert_eq!(theirs.len(), MAX_BLOCKS, "{theirs:?}");
    assert!(
        bound > usize::from(BLOCK_SIZE) && bound <= MAX_BLOCKS * usize::from(BLOCK_SIZE),
        "{bound} bindings for a host with two blocks of {BLOCK_SIZE}"
    );
    assert_eq!(theirs[0]["public"], theirs[1]["public"], "paired pooling");
    drop(socks);

    // Who holds a port: the binding, or (a port nobody uses) the block.
    let probe = seen[&KEEPS_ITS_PORT];
    let b = block_of(KEEPS_ITS_PORT);
    let live = lookup(&d, &["-i", &ext, &probe.to_string()]);
    assert_eq!(live[0]["source"], "live", "{live}");
    let lo = b["first_port"].as_u64().unwrap() as u16;
    let unused = if probe.port() == lo { lo + 1 } else { lo };
    let unused = format!("{}:{unused}", probe.ip());
    let by_block = lookup(&d, &["-i", &ext, &unused]);
    assert_eq!(by_block[0]["source"], "block", "{by_block}");
    assert_eq!(by_block[0]["inside"], host(KEEPS_ITS_PORT).to_string());
    assert_eq!(
        by_block[0]["ports"],
        format!("{lo}-{}", lo + BLOCK_SIZE - 1),
        "{by_block}"
    );

    // Unused past the hold-down: every block goes back.
    wait_until(SOON, "the blocks to be released", || {
        held_blocks(&d).is_empty()
    });
    let released = f64::from(HOSTS) + MAX_BLOCKS as f64;
    wait_until(SOON, "the releases counted", || {
        metric(
            &d,
            "xnat_port_blocks_released_total",
            &["reason=\"unused\"", &iface],
        ) >= released
    });

    // The log: a line per block each way, none per binding.
    let lines = json_lines(&log);
    let count = |event: &str| lines.iter().filter(|l| l["event"] == event).count();
    assert_eq!(
        count("block-allocated"),
        usize::from(HOSTS) + MAX_BLOCKS,
        "{lines:?}"
    );
    assert_eq!(
        count("block-released"),
        usize::from(HOSTS) + MAX_BLOCKS,
        "{lines:?}"
    );
    assert_eq!(count("created"), 0, "bindings are not logged one by one");
    let allocated = lines
        .iter()
        .find(|l| {
            l["event"] == "block-allocated" && l["inside"] == host(KEEPS_ITS_PORT).to_string()
        })
        .expect("the host's block allocation");
    assert_eq!(allocated["public"], probe.ip().to_string());
    // Released: the log still says who had it.
    let at = allocated["time"].as_str().unwrap();
    let past = lookup(&d, &["-i", &ext, &probe.to_string(), "--at", at]);
    assert_eq!(past[0]["source"], "block-log", "{past}");
    assert_eq!(
        past[0]["inside"],
        host(KEEPS_ITS_PORT).to_string(),
        "{past}"
    );

    // IPFIX: the same events, as nfdump decodes them.
    wait_until(SOON, "the block records exported", || {
        let label = |e: &str| format!("event=\"{e}\"");
        metric(
            &d,
            "xnat_ipfix_records_total",
            &[&label("port-block-deallocation"), &iface],
        ) >= released
    });
    let (out, records) = collector.records(&d);
    dump.signal(libc::SIGTERM);
    let status = dump.wait_exit(SOON);
    assert!(status.success(), "tcpdump: {}", describe(status));
    let (_, stderr) = d.stop();
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Wireshark: every block record with its host, pool address and ports.
    let fields = d.t.nat.run_ok(&[
        "tshark",
        "-r",
        pcap.to_str().unwrap(),
        "-d",
        "udp.port==4739,cflow",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-e",
        "cflow.nat_event",
        "-e",
        "cflow.srcaddr",
        "-e",
        "cflow.post_natsource_ipv4_address",
        "-e",
        "cflow.port_range_start",
        "-e",
        "cflow.port_range_end",
    ]);
    let mut decoded: Vec<[String; 5]> = Vec::new();
    for line in fields.lines() {
        let cols: Vec<Vec<&str>> = line.split('\t').map(|c| c.split(',').collect()).collect();
        if cols.len() < 5 {
            continue;
        }
        // Every record has a natEvent and a sourceIPv4Address; all but
        // "Quota exceeded" (13) a postNATSourceIPv4Address; only the block
        // records (16, 17) port ranges: line the occurrences up by that.
        let (mut post_nat, mut block) = (0, 0);
        for (j, event) in cols[0].iter().enumerate() {
            let this_post_nat = post_nat;
            if *event != "13" {
                post_nat += 1;
            }
            if *event != "16" && *event != "17" {
                continue;
            }
            let at = |c: usize, i: usize| cols[c].get(i).unwrap_or(&"?").to_string();
            decoded.push([
                event.to_string(),
                at(1, j),
                at(2, this_post_nat),
                at(3, block),
                at(4, block),
            ]);
            block += 1;
        }
    }
    let (lo, hi) = (
        b["first_port"].as_u64().unwrap().to_string(),
        b["last_port"].as_u64().unwrap().to_string(),
    );
    for event in ["16", "17"] {
        let want = [
            event.to_string(),
            host(KEEPS_ITS_PORT).to_string(),
            probe.ip().to_string(),
            lo.clone(),
            hi.clone(),
        ];
        assert!(decoded.contains(&want), "no {want:?} in tshark's\n{fields}");
    }
    let released = released as usize;
    assert_eq!(decoded.len(), 2 * released, "tshark's\n{fields}");
    // nfdump 1.7 decodes the event, the inside host and the pool address
    // of a port block record (not portRangeStart/End: it has no field for
    // them in IPFIX; the JSON log above carries the ports).
    for event in ["Port block allocation", "Port block de-allocation"] {
        let of = |h: Ipv4Addr| {
            records
                .iter()
                .filter(|r| r["nat_event"] == event && r["src4_addr"] == h.to_string())
                .count()
        };
        for n in seen.keys() {
            assert_eq!(of(host(*n)), 1, "{event} of {}:\n{out}", host(*n));
        }
        assert_eq!(of(CLI), MAX_BLOCKS, "{event} of {CLI}:\n{out}");
        assert!(
            records.iter().any(|r| r["nat_event"] == event
                && r["src4_addr"] == host(KEEPS_ITS_PORT).to_string()
                && r["src4_xlt_ip"] == probe.ip().to_string()),
            "{event} of {} on {}:\n{out}",
            host(KEEPS_ITS_PORT),
            probe.ip()
        );
    }
}
