//! BENCHMARKS.md (and the console table) from the parts of the run:
//! `xnat-bench`'s JSON, the end-to-end JSON, `xnat-flood`'s JSON, `xnat-ha bench`'s JSON and
//! the NAT64 JSON.

pub mod failover;
pub mod flood;
pub mod micro;
pub mod nat64;

use std::fmt::Write as _;

use serde_json::Value;

/// Where and when the run happened.
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub date: String,
    pub load_before: String,
    pub load_after: String,
    pub duration_s: f64,
    pub command: String,
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn ns(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "–".into()
    }
}

fn ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}×")
    } else {
        "–".into()
    }
}

fn kpps(v: f64) -> String {
    if v.is_finite() {
        format!("{:.0} k", v / 1e3)
    } else {
        "–".into()
    }
}

fn gbps(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2}", v / 1e9)
    } else {
        "–".into()
    }
}

fn count(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "–".into()
    }
}

fn one_decimal(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "–".into()
    }
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0} %")
    } else {
        "–".into()
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn scale_name(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn case<'a>(cases: &'a Value, id: &str) -> Option<&'a Value> {
    cases
        .as_array()?
        .iter()
        .find(|c| c["id"].as_str() == Some(id))
}

struct Target {
    what: String,
    measured: String,
    pass: Option<bool>,
}

fn verdict(p: Option<bool>) -> &'static str {
    match p {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "n/a",
    }
}

/// A ratio with the range of its per-round values, e.g. `0.92× (0.80–1.05)`.
fn ratio_range(r: &Value, key: &str) -> String {
    let rounds: Vec<f64> = r[format!("{key}_rounds")]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let lo = rounds.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rounds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if rounds.len() >= 2 && lo.is_finite() && hi.is_finite() {
        format!("{} (rounds {lo:.2}–{hi:.2})", ratio(f(&r[key])))
    } else {
        ratio(f(&r[key]))
    }
}

/// Whether the per-round ratios `{key}_rounds` (xnat / nft, median in
/// `key`) show xnat *not measurably below*: TCP through any of these
/// gateways is limited by the end hosts, so equal gateways come out above
/// or below 1 by chance, round by round, by up to ±30 % here. Below means a
/// one-sided sign test says so — below in every round, a chance of 1 in
/// 2^rounds (1/128 with the default 7 rounds) if the two were equal — or a
/// median ratio under 0.90. Also returns how many rounds were below, of how many.
fn not_below(r: &Value, key: &str) -> (Option<bool>, usize, usize) {
    let rounds: Vec<f64> = r[format!("{key}_rounds")]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let median = f(&r[key]);
    let below = rounds.iter().filter(|x| **x < 1.0).count();
    if !median.is_finite() || rounds.is_empty() {
        return (None, below, rounds.len());
    }
    let pass = median >= 0.90 && !(rounds.len() >= 2 && below == rounds.len());
    (Some(pass), below, rounds.len())
}

fn targets(
    micro: Option<&Value>,
    e2e: Option<&Value>,
    fl: Option<&Value>,
    fo: Option<&Value>,
) -> Vec<Target> {
    let mut t = Vec::new();
    let na = |what: &str, why: &str| Target {
        what: what.into(),
        measured: why.into(),
        pass: None,
    };

    // Per-packet cost of an established flow: against the minimal NAT of
    // the same hook (the fair baseline), and against the no-op, each its
    // own row (the no-op ratio moves with the machine, and the minimal NAT
    // itself is over 4× the no-op in TC).
    let what = &micro::marked(
        "established flow, XDP ingress and TC egress: ≤ 1.5× the minimal NAT",
        micro::ESTABLISHED,
    );
    let what_noop = &micro::marked(
        "established flow, XDP ingress and TC egress: ≤ 4× the no-op",
        micro::ESTABLISHED_NOOP,
    );
    let what_new = &micro::marked(
        "new binding (egress TC, new UDP flow): ≤ 600 ns",
        micro::NEW_BINDING,
    );
    match micro.map(|m| &m["per_packet"]["cases"]) {
        Some(cases) => {
            let (mut pass, mut pass_noop) = (Some(true), Some(true));
            let (mut parts, mut parts_noop) = (Vec::new(), Vec::new());
            for (id, name) in [
                ("xnat_ingress_xdp_udp", "XDP ingress UDP"),
                ("xnat_ingress_xdp_tcp", "XDP ingress TCP"),
                ("xnat_egress_tc_udp", "TC egress UDP"),
                ("xnat_egress_tc_tcp", "TC egress TCP"),
            ] {
                let Some(c) = case(cases, id) else {
                    (pass, pass_noop) = (None, None);
                    continue;
                };
                let vs_min = f(&c["against"]["ratio"]);
                let vs_noop = f(&c["ratio"]);
                parts.push(format!("{name} {}", ratio(vs_min)));
                // What the minimal NAT of the same hook and flow costs
                // against the no-op: the floor of this ratio.
                let floor = c["against"]["id"]
                    .as_str()
                    .and_then(|b| case(cases, b))
                    .map(|b| format!(" (minimal NAT {})", ratio(f(&b["ratio"]))))
                    .unwrap_or_default();
                parts_noop.push(format!("{name} {}{floor}", ratio(vs_noop)));
                pass = pass.map(|p| p && vs_min.is_finite() && vs_min <= 1.5);
                pass_noop = pass_noop.map(|p| p && vs_noop <= 4.0);
            }
            t.push(Target {
                what: what.into(),
                measured: parts.join("; "),
                pass,
            });
            t.push(Target {
                what: what_noop.into(),
                measured: parts_noop.join("; "),
                pass: pass_noop,
            });
            let what = what_new;
            match case(cases, "egress_new_binding") {
                Some(c) => {
                    let v = f(&c["ns"]);
                    // The floor on this machine: the minimal NAT making the
                    // same bindings in tables as large, in the same rounds.
                    let floor = match case(cases, "baseline_new_binding") {
                        Some(b) => format!(
                            " = {:.2}× the minimal NAT's new binding ({} ns: one lookup that \
                             misses and two inserts into tables this size)",
                            f(&c["against"]["ratio"]),
                            ns(f(&b["ns"]))
                        ),
                        None => String::new(),
                    };
                    t.push(Target {
                        what: what.into(),
                        measured: format!("{} ns{floor}", ns(v)),
                        pass: v.is_finite().then_some(v <= 600.0),
                    });
                }
                None => t.push(na(what, "not run")),
            }
        }
        None => {
            t.push(na(what, "not run"));
            t.push(na(what_noop, "not run"));
            t.push(na(what_new, "not run"));
        }
    }

    // Flatness.
    let flat_rows = [
        (
            "hot_xnat_ingress_xdp",
            micro::marked(
                "xnat ingress (XDP) flat within 20 % from 1k to 1M bindings — one established flow",
                micro::FLAT,
            ),
        ),
        (
            "random_xnat_ingress_xdp",
            micro::marked(
                "… a random established flow per packet: for reference (the next target judges it)",
                micro::FLAT_RANDOM,
            ),
        ),
    ];
    if micro.is_none() {
        for (_, what) in &flat_rows {
            t.push(na(what, "not run"));
        }
    }
    if let Some(m) = micro {
        let scales: Vec<u64> = m["scale"]["scales"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let cases = &m["scale"]["cases"];
        for (prefix, what) in &flat_rows {
            let (prefix, what) = (*prefix, what.as_str());
            let v: Vec<f64> = scales
                .iter()
                .filter_map(|n| case(cases, &format!("{prefix}@{n}")).map(|c| f(&c["ns"])))
                .collect();
            let covers = scales.first() == Some(&1_000) && scales.last() == Some(&1_000_000);
            if v.len() >= 2 {
                let (lo, hi) = v
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
                let spread = hi / lo - 1.0;
                let list: Vec<String> = scales
                    .iter()
                    .zip(&v)
                    .map(|(n, x)| format!("{} {} ns", scale_name(*n), ns(*x)))
                    .collect();
                // The random-flow row is memory-bound (cache and TLB
                // misses of tables larger than the CPU caches): it shows
                // what traffic over many flows pays, it does not judge.
                let reference = prefix.starts_with("random");
                t.push(Target {
                    what: what.into(),
                    measured: format!(
                        "{}: spread {:.0} %{}{}",
                        list.join(", "),
                        spread * 100.0,
                        if covers { "" } else { " (1k–1M not covered)" },
                        if reference {
                            " — cache and TLB misses once the tables outgrow the CPU caches"
                        } else {
                            ""
                        }
                    ),
                    pass: (covers && !reference).then_some(spread <= 0.20),
                });
            } else {
                t.push(na(what, "not run"));
            }
        }
    }

    // A random established flow per packet, 1M bindings against 1k: what
    // the tables' layout costs once they outgrow the CPU caches.
    let random_rows = [
        (
            "xnat_ingress_xdp",
            "xnat_baseline_xdp",
            "XDP ingress",
            micro::RANDOM_XDP,
            micro::RANDOM_XDP_MINIMAL,
        ),
        (
            "xnat_egress_tc",
            "xnat_baseline_tc",
            "TC egress",
            micro::RANDOM_TC,
            micro::RANDOM_TC_MINIMAL,
        ),
    ];
    let random_what = |name: &str, part| {
        micro::marked(
            &format!("random established flow, {name}: at 1M bindings ≤ 3× at 1k"),
            part,
        )
    };
    let random_minimal_what = |name: &str, part| {
        micro::marked(
            &format!(
                "random established flow, {name}, 1M bindings: ≤ 1.5× the minimal NAT on the same bindings"
            ),
            part,
        )
    };
    if micro.is_none() {
        for (_, _, name, part, part_minimal) in random_rows {
            t.push(na(&random_what(name, part), "not run"));
            t.push(na(&random_minimal_what(name, part_minimal), "not run"));
        }
    }
    if let Some(m) = micro {
        let cases = &m["scale"]["cases"];
        // The minimal NAT on the same bindings: one hash lookup's cache and
        // TLB misses alone, the floor any hash-table NAT stands on.
        for (prog, baseline, name, part, part_minimal) in random_rows {
            let what = random_what(name, part);
            let at =
                |p: &str, n: &str| case(cases, &format!("random_{p}@{n}")).map(|c| f(&c["ns"]));
            let floor = match (at(baseline, "1000"), at(baseline, "1000000")) {
                (Some(small), Some(large)) => format!(
                    " (the minimal NAT on the same bindings: 1k {} ns, 1M {} ns: {})",
                    ns(small),
                    ns(large),
                    ratio(large / small)
                ),
                _ => String::new(),
            };
            match (at(prog, "1000"), at(prog, "1000000")) {
                (Some(small), Some(large)) => t.push(Target {
                    what,
                    measured: format!(
                        "1k {} ns, 1M {} ns: {}{floor}",
                        ns(small),
                        ns(large),
                        ratio(large / small)
                    ),
                    pass: Some(large <= 3.0 * small),
                }),
                _ => t.push(na(&what, "1k and 1M not both run")),
            }
            // What xnat's layout adds to those misses: judged against the
            // minimal NAT at the same scale, as the per-packet cost is.
            let what = random_minimal_what(name, part_minimal);
            match (at(prog, "1000000"), at(baseline, "1000000")) {
                (Some(x), Some(b)) => t.push(Target {
                    what,
                    measured: format!("{} ns against {} ns: {}", ns(x), ns(b), ratio(x / b)),
                    pass: Some(x <= 1.5 * b),
                }),
                _ => t.push(na(&what, "1M not run")),
            }
        }
    }

    // End to end. The UDP targets are judged on the XDP generator's figures
    // (a saturated gateway whatever its speed) and the fast path with XDP
    // on the inside interface; the TCP one on the fast path in TC, what a
    // veth gets (see Method).
    let what_udp = "64-byte UDP rate with the fast path: ≥ 1.5× nftables masquerade";
    let what_plain = "64-byte UDP rate with the fast path: ≥ plain forwarding";
    match e2e.map(|e| &e["ratios"]) {
        Some(r) if r.get("xnat_fast/nft").is_some() => {
            let a = f(&r["xnat_fast/nft"]["udp_xdp_pps"]);
            t.push(Target {
                what: what_udp.into(),
                measured: format!(
                    "XDP generator: fast path (XDP inside) / nft {} (TC inside / nft {}; xnat \
                     without fast path / nft {}; for reference, AF_PACKET sender: fast path / \
                     nft {}; all on one CPU with trafgen: {})",
                    ratio_range(&r["xnat_fast/nft"], "udp_xdp_pps"),
                    ratio(f(&r["xnat_fast_tc/nft"]["udp_xdp_pps"])),
                    ratio(f(&r["xnat/nft"]["udp_xdp_pps"])),
                    ratio(f(&r["xnat_fast/nft"]["udp_pps"])),
                    ratio(f(&r["xnat_fast/nft"]["udp_trafgen_pps"]))
                ),
                pass: a.is_finite().then_some(a >= 1.5),
            });
            let b = f(&r["xnat_fast/plain"]["udp_xdp_pps"]);
            t.push(Target {
                what: what_plain.into(),
                measured: format!(
                    "XDP generator: fast path (XDP inside) / plain {} (TC inside / plain {}; for \
                     reference, AF_PACKET sender: {}; all on one CPU with trafgen: {})",
                    ratio_range(&r["xnat_fast/plain"], "udp_xdp_pps"),
                    ratio(f(&r["xnat_fast_tc/plain"]["udp_xdp_pps"])),
                    ratio(f(&r["xnat_fast/plain"]["udp_pps"])),
                    ratio(f(&r["xnat_fast/plain"]["udp_trafgen_pps"]))
                ),
                pass: b.is_finite().then_some(b >= 1.0),
            });
        }
        Some(_) => {
            // A run of some modes only (`--modes`), or a build without the
            // fast path.
            let why = if e2e.is_some_and(|e| e["modes"].get("xnat_fast").is_some()) {
                "not run"
            } else {
                "no fast-path column (see notes)"
            };
            t.push(na(what_udp, why));
            t.push(na(what_plain, why));
        }
        None => {
            t.push(na(what_udp, "not run"));
            t.push(na(what_plain, "not run"));
        }
    }
    // Issue 16's ceiling: xnat's XDP fast path against a program that only
    // forwards, on the same path, sender and rounds. Median of the
    // per-round ratios, like the targets above.
    let what_redirect = "end to end, fast path with XDP inside: ≥ 0.7× a bare XDP redirect \
                         program (no NAT; same topology, generator, run)";
    match e2e.map(|e| (&e["ratios"], &e["modes"])) {
        Some((r, _)) if r.get("xnat_fast/xdp_redirect").is_some() => {
            let a = f(&r["xnat_fast/xdp_redirect"]["udp_xdp_pps"]);
            t.push(Target {
                what: what_redirect.into(),
                measured: format!(
                    "XDP generator, 64-byte UDP: fast path (XDP inside) / bare redirect {} (for \
                     reference, AF_PACKET sender: {}; all on one CPU with trafgen: {})",
                    ratio_range(&r["xnat_fast/xdp_redirect"], "udp_xdp_pps"),
                    ratio(f(&r["xnat_fast/xdp_redirect"]["udp_pps"])),
                    ratio(f(&r["xnat_fast/xdp_redirect"]["udp_trafgen_pps"]))
                ),
                pass: a.is_finite().then_some(a >= 0.7),
            });
        }
        Some((_, m)) if m.get("xnat_fast").is_none() => {
            t.push(na(what_redirect, "no fast-path column (see notes)"));
        }
        _ => t.push(na(what_redirect, "not run")),
    }
    if let Some(r) = e2e.map(|e| &e["ratios"]) {
        for (key, name) in [
            ("xnat/nft", "xnat"),
            (
                "xnat_fast_tc/nft",
                "xnat --fast-path (TC inside, as on a veth)",
            ),
        ] {
            if r.get(key).is_none() {
                continue;
            }
            let (one, below1, n1) = not_below(&r[key], "tcp1_bps");
            let (four, below4, n4) = not_below(&r[key], "tcp4_bps");
            let mut measured = format!(
                "1 stream {}, below in {below1} of {n1} rounds; 4 streams {}, below in {below4} \
                 of {n4} rounds",
                ratio_range(&r[key], "tcp1_bps"),
                ratio_range(&r[key], "tcp4_bps")
            );
            if key == "xnat_fast_tc/nft" && r.get("xnat_fast/nft").is_some() {
                let _ = write!(
                    measured,
                    " (XDP inside, not like for like — the client's TSO is off there: 1 stream \
                     {}, 4 streams {})",
                    ratio(f(&r["xnat_fast/nft"]["tcp1_bps"])),
                    ratio(f(&r["xnat_fast/nft"]["tcp4_bps"]))
                );
            }
            t.push(Target {
                what: format!(
                    "TCP throughput, {name}: not below nftables masquerade (not measurably: \
                     below in every round, or a median under 0.90×, fails; see Method)"
                ),
                measured,
                pass: one.zip(four).map(|(a, b)| a && b),
            });
        }
    } else {
        t.push(na(
            "TCP throughput: not below nftables masquerade",
            "not run",
        ));
    }

    // Memory and sweep.
    let what_memory = &micro::marked("1M bindings in ≤ 256 MiB of map memory", micro::MEMORY);
    let what_expiry = &micro::marked(
        "expiry of 1M bindings: < 0.5 s of CPU all live, < 1 s all expired",
        micro::EXPIRY,
    );
    if micro.is_none() {
        t.push(na(what_memory, "not run"));
        t.push(na(what_expiry, "not run"));
    }
    if let Some(m) = micro {
        let mem = m["scale"]["memory"].as_array().and_then(|a| a.last());
        let what = what_memory;
        match mem {
            Some(mem) => {
                let n = mem["bindings"].as_u64().unwrap_or(0);
                let total = f(&mem["total_bytes"]);
                let per = f(&mem["bytes_per_binding"]);
                let at_1m = per * 1e6;
                t.push(Target {
                    what: what.into(),
                    measured: if n == 1_000_000 {
                        format!("{} ({per:.0} B per binding)", mib(total))
                    } else {
                        format!(
                            "{per:.0} B per binding at {}: {} for 1M",
                            scale_name(n),
                            mib(at_1m)
                        )
                    },
                    pass: (n == 1_000_000).then_some(total <= 256.0 * 1024.0 * 1024.0),
                });
            }
            None => t.push(na(what, "not run")),
        }
        let sweep = &m["scale"]["sweep"];
        let what = what_expiry;
        if sweep.is_object() {
            let n = sweep["bindings"].as_u64().unwrap_or(0);
            // The default walk is the kernel's; a run without it (older
            // results) has only the user walk.
            let (live, exp, other) = if sweep["live_kernel"].is_object() {
                (
                    f(&sweep["live_kernel"]["cpu_ms"]),
                    f(&sweep["expired_kernel"]["cpu_ms"]),
                    format!(
                        " (read out into user space, `--expiry-walk user`: {:.0} ms / {:.0} ms)",
                        f(&sweep["live"]["cpu_ms"]),
                        f(&sweep["expired"]["cpu_ms"])
                    ),
                )
            } else {
                (
                    f(&sweep["live"]["cpu_ms"]),
                    f(&sweep["expired"]["cpu_ms"]),
                    String::new(),
                )
            };
            let stall = &sweep["stall"];
            let waits = if stall.is_object() {
                format!(
                    "; packets on the sweeping CPU waited at most {:.1} ms meanwhile ({:.1} ms \
                     with the user walk)",
                    f(&stall["kernel"]["max_rtt_ms"]),
                    f(&stall["user"]["max_rtt_ms"])
                )
            } else {
                String::new()
            };
            t.push(Target {
                what: what.into(),
                measured: format!(
                    "{} bindings, as the agent sweeps by default (in the kernel): CPU {live:.0} ms \
                     all live, {exp:.0} ms all expired{other}{waits}",
                    scale_name(n)
                ),
                pass: (n == 1_000_000).then_some(live < 500.0 && exp < 1000.0),
            });
        } else {
            t.push(na(what, "not run"));
        }
    }
    t.push(flood::target(fl));
    t.push(failover::target(fo));
    t
}

/// Log volume per million new flows, by allocation mode.
fn log_volume_table(out: &mut String, m: &Value) {
    let lv = &m["log_volume"];
    if !lv.is_object() {
        return;
    }
    let mb = |k: &str| f(&lv[k]) / 1e6;
    let _ = writeln!(
        out,
        "\nLog volume per 1M new flows (each binding created and deleted; the agent's own \
         translation log and IPFIX exporter fed {} bindings, scaled to a million):\n\n\
         | allocation | output | MB per 1M flows |\n|---|---|---:|\n\
         | dynamic | JSON lines (`--log-bindings`) | {:.1} |\n\
         | dynamic | IPFIX (`--ipfix`, messages without UDP/IP headers) | {:.1} |\n\
         | deterministic (RFC 7422) | none needed: the layout names the holder | 0 |",
        lv["bindings"],
        mb("json_bytes_per_million"),
        mb("ipfix_bytes_per_million")
    );
    // Block allocation logs a block twice (allocated, released), whatever
    // the flows in it: per flow, the block's bytes over its flows.
    let per_block = |k: &str| f(&lv[k]);
    if per_block("block_json_bytes_per_block").is_finite() {
        let flows = f(&lv["flows_per_block"]);
        let per_m = |k: &str, flows: f64| per_block(k) * 1e6 / flows / 1e6;
        let _ = writeln!(
            out,
            "| block, {flows:.0} flows a block | JSON lines | {:.2} |\n\
             | block, {flows:.0} flows a block | IPFIX | {:.2} |\n\
             | block, 1 flow a block (worst case) | JSON lines | {:.1} |\n\
             | block, 1 flow a block (worst case) | IPFIX | {:.1} |\n\n\
             A block costs {:.0} B of JSON lines and {:.0} B of IPFIX (allocated and released).",
            per_m("block_json_bytes_per_block", flows),
            per_m("block_ipfix_bytes_per_block", flows),
            per_m("block_json_bytes_per_block", 1.0),
            per_m("block_ipfix_bytes_per_block", 1.0),
            per_block("block_json_bytes_per_block"),
            per_block("block_ipfix_bytes_per_block"),
        );
    }
}

fn per_packet_table(out: &mut String, m: &Value) {
    let pp = &m["per_packet"];
    let _ = writeln!(
        out,
        "| case | program | method | ns/packet | × no-op | × minimal NAT |\n|---|---|---|---:|---:|---:|"
    );
    for c in pp["cases"].as_array().into_iter().flatten() {
        if c["id"] == "noop_loop" || c["id"].as_str().is_some_and(micro::in_nat64_table) {
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} |",
            c["label"].as_str().unwrap_or(""),
            c["prog"].as_str().unwrap_or(""),
            c["method"].as_str().unwrap_or(""),
            ns(f(&c["ns"])),
            ratio(f(&c["ratio"])),
            if c["against"].is_object() {
                ratio(f(&c["against"]["ratio"]))
            } else {
                "".to_string()
            }
        );
    }
}

/// What each program does per established packet beyond the minimal NAT,
/// for the profile's table.
const PROFILED: &[(&str, &str)] = &[
    (
        "xnat_ingress_xdp",
        "two hash lookups — NAPT_IN (public endpoint → inside endpoint), then NAPT_OUT (the \
         mapping, which holds the session) — where the minimal NAT makes one; the session's \
         counters; the static-table, trace and fast-path flags; CONFIG; two per-CPU counters",
    ),
    (
        "xnat_ingress_tc",
        "as in XDP, plus the checksum helpers every TC rewrite goes through",
    ),
    (
        "xnat_egress_tc",
        "one hash lookup (NAPT_OUT: the mapping and its session) like the minimal NAT, the \
         session's counters and timestamp, the same two checksum helpers (the address with \
         the pseudo-header flag, then the port: in a CHECKSUM_PARTIAL skb only the first may \
         touch the field), the flags and counters",
    ),
    (
        "xnat_baseline_xdp",
        "the minimal NAT: one hash lookup, the rewrite",
    ),
    (
        "xnat_baseline_tc",
        "the minimal NAT in TC: one hash lookup, the rewrite through the checksum helpers",
    ),
];

/// "Where the nanoseconds go": each program's time per established UDP
/// packet (its `repeat` figure less the no-op's, i.e. less the test-run
/// loop) split by what perf saw it doing.
fn nanoseconds_table(out: &mut String, m: &Value) {
    let p = &m["profile"];
    let _ = writeln!(
        out,
        "
### Where the nanoseconds go
"
    );
    if let Some(why) = p["unavailable"].as_str() {
        let _ = writeln!(out, "Not profiled: {why}.");
        return;
    }
    let Some(kinds) = p["kinds"].as_array() else {
        let _ = writeln!(out, "Not profiled in this run.");
        return;
    };
    let cases = &m["per_packet"]["cases"];
    let noop = case(cases, "noop").map(|c| f(&c["ns"])).unwrap_or(f64::NAN);
    let _ = writeln!(
        out,
        "Each program's established UDP packet (the `repeat` figure above less the no-op's, \
         which is the test-run loop), split by what `perf record -g` found it doing in a run \
         of the same cases (`xnat-bench --established-only`, sampled at 5 kHz; see Method). \
         ns (share of the program's samples):\n"
    );
    let heads: Vec<&str> = kinds.iter().filter_map(|k| k["what"].as_str()).collect();
    let _ = writeln!(
        out,
        "| program | in the program | {} | samples | what it does |\n|---|---:|{}---:|---|",
        heads.join(" | "),
        "---:|".repeat(heads.len())
    );
    for (prog, does) in PROFILED {
        let prof = &p["programs"][*prog];
        let Some(c) = case(cases, &format!("{prog}_udp")) else {
            continue;
        };
        if !prof.is_object() {
            continue;
        }
        let own = f(&c["ns"]) - noop;
        let cells: Vec<String> = kinds
            .iter()
            .map(|k| {
                let share = f(&prof["shares"][k["kind"].as_str().unwrap_or("")]);
                format!("{} ({:.0} %)", ns(own * share), share * 100.0)
            })
            .collect();
        let _ = writeln!(
            out,
            "| `{prog}` | {} | {} | {} | {does} |",
            ns(own),
            cells.join(" | "),
            prof["samples"]
        );
    }
}

fn scale_tables(out: &mut String, m: &Value) {
    let s = &m["scale"];
    let scales: Vec<u64> = s["scales"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let head: Vec<String> = scales.iter().map(|n| scale_name(*n)).collect();
    let _ = writeln!(
        out,
        "ns/packet (× no-op) with n live bindings in the tables:\n\n| case | {} | spread |\n|---|{}---:|",
        head.join(" | "),
        "---:|".repeat(scales.len())
    );
    let rows = [
        (
            "hot_xnat_ingress_xdp",
            "ingress XDP, one established UDP flow",
        ),
        (
            "hot_xnat_ingress_tc",
            "ingress TC, one established UDP flow",
        ),
        ("hot_xnat_egress_tc", "egress TC, one established UDP flow"),
        (
            "random_xnat_ingress_xdp",
            "ingress XDP, random established flow per packet",
        ),
        (
            "random_xnat_egress_tc",
            "egress TC, random established flow per packet",
        ),
        (
            "random_xnat_baseline_xdp",
            "minimal NAT, inbound XDP, random established flow per packet",
        ),
        (
            "random_xnat_baseline_tc",
            "minimal NAT, outbound TC, random established flow per packet",
        ),
    ];
    for (prefix, label) in rows {
        let vals: Vec<Option<&Value>> = scales
            .iter()
            .map(|n| case(&s["cases"], &format!("{prefix}@{n}")))
            .collect();
        let nsv: Vec<f64> = vals.iter().flatten().map(|c| f(&c["ns"])).collect();
        let spread = if nsv.len() >= 2 {
            let lo = nsv.iter().copied().fold(f64::MAX, f64::min);
            let hi = nsv.iter().copied().fold(f64::MIN, f64::max);
            format!("{:.0} %", (hi / lo - 1.0) * 100.0)
        } else {
            "–".into()
        };
        let cells: Vec<String> = vals
            .iter()
            .map(|c| match c {
                Some(c) => format!("{} ({})", ns(f(&c["ns"])), ratio(f(&c["ratio"]))),
                None => "–".into(),
            })
            .collect();
        let _ = writeln!(out, "| {label} | {} | {spread} |", cells.join(" | "));
    }

    if let Some(b) = m["per_packet"]["block_tables"].as_object() {
        let _ = writeln!(
            out,
            "\nBlock allocation adds two tables, by block and by inside host, not by binding: \
             after the block rows, {} blocks held by {} hosts took {} (BLOCKS) and {} \
             (HOST_BLOCKS), bucket arrays for 65536 entries each included. The binding tables \
             are the same in every mode, so are the figures below.",
            b["blocks"],
            b["hosts"],
            mib(f(&b["blocks_memlock"])),
            mib(f(&b["host_blocks_memlock"]))
        );
    }
    let _ = writeln!(
        out,
        "\nKernel memory of the binding tables (`memlock` from /proc/self/fdinfo of each map; \
         NAPT_OUT and NAPT_IN are preallocated, so theirs is the cost of the capacity, filled to \
         it; SESSIONS, FILTER and HOST_PORTS are not: their bucket array plus what they hold, \
         here nothing in SESSIONS and FILTER, since each binding has one session, held in its \
         mapping, and one HOST_PORTS entry per inside host):\n"
    );
    let mems = s["memory"].as_array().cloned().unwrap_or_default();
    let names = ["NAPT_OUT", "NAPT_IN", "SESSIONS", "FILTER", "HOST_PORTS"];
    let _ = writeln!(
        out,
        "| bindings | {} | total | per binding |\n|---:|{}---:|---:|",
        names.join(" | "),
        "---:|".repeat(names.len())
    );
    for mem in &mems {
        let cells: Vec<String> = names
            .iter()
            .map(|n| {
                mem["maps"]
                    .as_array()
                    .and_then(|a| a.iter().find(|m| m["name"] == *n))
                    .map(|m| mib(f(&m["memlock"])))
                    .unwrap_or_else(|| "–".into())
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} B |",
            scale_name(mem["bindings"].as_u64().unwrap_or(0)),
            cells.join(" | "),
            mib(f(&mem["total_bytes"])),
            f(&mem["bytes_per_binding"])
        );
    }
    let _ = writeln!(
        out,
        "\nWhere the bytes go: a preallocated hash-map entry is a 48 B kernel element header, \
         the key and the value (each rounded up to 8 B), and a 16 B bucket (the bucket array is \
         a power of two ≥ the capacity). A binding is two such entries: NAPT_OUT 48 + 8 + 72 + \
         16 = 144 B (the mapping holds its first session: remote endpoint, TCP state, last seen, \
         counters) and NAPT_IN 48 + 8 + 8 + 16 = 80 B (the inside endpoint), 224 B in all, where \
         256 MiB for 1M bindings allows 268 B. SESSIONS and FILTER are not preallocated: they \
         cost their bucket array, 16 B per slot of their capacity (sized here like the mapping \
         tables: 2 × 16 B per binding for the two), plus what they hold: only the sessions \
         beyond each mapping's first and the remote addresses beyond its first session's (none \
         in these runs)."
    );

    let sw = &s["sweep"];
    if sw.is_object() {
        let _ = writeln!(
            out,
            "\nExpiry sweep (`nat_userspace::agent::expiry::Sweeper`, the agent's code) over {} bindings, \
             one sweep, median of {} runs; as the agent sweeps by default (walked in the kernel) \
             and with `--expiry-walk user` (the mappings read into user space in batches):\n\n| walk | state | wall | CPU (user + sys) | user | sys |\n|---|---|---:|---:|---:|---:|",
            scale_name(sw["bindings"].as_u64().unwrap_or(0)),
            sw["live"]["samples_wall_ms"].as_array().map_or(0, Vec::len)
        );
        for (k, walk, label) in [
            (
                "live_kernel",
                "in the kernel (default)",
                "all live (nothing to delete)",
            ),
            (
                "expired_kernel",
                "in the kernel (default)",
                "all idle past their timeout (everything deleted)",
            ),
            ("live", "in user space", "all live"),
            ("expired", "in user space", "all expired"),
        ] {
            let x = &sw[k];
            if !x.is_object() {
                continue;
            }
            let _ = writeln!(
                out,
                "| {walk} | {label} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
                f(&x["wall_ms"]),
                f(&x["cpu_ms"]),
                f(&x["user_ms"]),
                f(&x["sys_ms"])
            );
        }
        let _ = writeln!(
            out,
            "\nWhere the time goes: in user space, `BPF_MAP_LOOKUP_BATCH` copies every mapping out \
             (taking each bucket's lock, a cache miss per mapping: the elements lie in allocation \
             order, not bucket order) and `BPF_MAP_DELETE_BATCH` deletes by key, finding each entry \
             again ({} deletes when everything expires; NAPT_IN's come in random bucket order and \
             cost the most). In the kernel, `xnat_expire` (nat-ebpf expire.rs) walks NAPT_OUT with \
             `bpf_for_each_map_elem` and deletes an expired mapping and its NAPT_IN entry where it \
             finds them: no copies, no second search. It is a syscall program (loaded by \
             nat-userspace loader/syscall_prog.rs): its `BPF_PROG_TEST_RUN` runs in the agent's \
             process context with bottom halves on, so the CPU it runs on goes on receiving \
             packets. Loaded as a TC program, whose test run keeps bottom halves off, the same \
             walk held packets for its whole length (round trips of up to 818 ms during a walk of \
             1M expiring mappings, measured as below).",
            scale_name(2 * sw["bindings"].as_u64().unwrap_or(0))
        );
        let st = &sw["stall"];
        if st.is_object() {
            let _ = writeln!(
                out,
                "\nPackets on the sweeping CPU: a ping every {} ms across a veth pair of its own, \
                 sent from another CPU, both receive sides steered (RPS) to the CPU the sweep is \
                 pinned to. Longest round trip of a ping sent during a sweep: **{:.2} ms** walking \
                 in the kernel ({} pings), {:.2} ms reading the mappings out ({} pings); a walk \
                 that held the CPU's softirqs would show its whole length.",
                st["interval_ms"].as_u64().unwrap_or(0),
                f(&st["kernel"]["max_rtt_ms"]),
                st["kernel"]["pings"].as_u64().unwrap_or(0),
                f(&st["user"]["max_rtt_ms"]),
                st["user"]["pings"].as_u64().unwrap_or(0),
            );
        }
    }
}

fn e2e_table(out: &mut String, e: &Value) {
    let modes = [
        "plain",
        "nft",
        "xnat",
        "xnat_fast",
        "xnat_fast_tc",
        "xdp_redirect",
    ];
    let present: Vec<&str> = modes
        .iter()
        .copied()
        .filter(|m| e["modes"].get(*m).is_some())
        .collect();
    let heads: Vec<&str> = present
        .iter()
        .map(|m| e["modes"][*m]["label"].as_str().unwrap_or(m))
        .collect();
    let pairs: Vec<(&str, &str)> = [
        ("xnat/nft", "xnat / nft"),
        ("xnat_fast/nft", "fast XDP / nft"),
        ("xnat_fast/plain", "fast XDP / plain"),
        ("xnat_fast/xdp_redirect", "fast XDP / bare redirect"),
        ("xnat_fast_tc/nft", "fast TC / nft"),
        ("nft/plain", "nft / plain"),
    ]
    .into_iter()
    .filter(|(k, _)| e["ratios"].get(*k).is_some())
    .collect();
    let _ = writeln!(
        out,
        "| | {} | {} |\n|---|{}{}",
        heads.join(" | "),
        pairs.iter().map(|p| p.1).collect::<Vec<_>>().join(" | "),
        "---:|".repeat(present.len()),
        "---:|".repeat(pairs.len())
    );
    type Fmt = fn(f64) -> String;
    // (key, label, format, whether a ratio between modes means anything)
    let rows: [(&str, &str, Fmt, bool); 14] = [
        (
            "udp_xdp_pps",
            "64-byte UDP, packets/s through the gateway (XDP generator)",
            kpps,
            true,
        ),
        (
            "udp_xdp_offered_pps",
            "… offered by the generator, packets/s",
            kpps,
            false,
        ),
        (
            "udp_xdp_accepted_pps",
            "… taken into the gateway's receive ring, packets/s",
            kpps,
            false,
        ),
        ("udp_xdp_gw_cpu_busy_pct", "… gateway CPU busy", pct, false),
        (
            "udp_pps",
            "64-byte UDP with an AF_PACKET sender, packets/s",
            kpps,
            true,
        ),
        (
            "udp_sent_pps",
            "… offered by the sender, packets/s",
            kpps,
            false,
        ),
        (
            "udp_refused_pps",
            "… refused at once by the gateway's full input queue, packets/s",
            kpps,
            false,
        ),
        ("gw_cpu_busy_pct", "… gateway CPU busy", pct, false),
        ("sender_cpu_busy_pct", "… sender CPU busy", pct, false),
        (
            "gw_ipis_per_kpkt",
            "… wake-up IPIs to the gateway CPU per 1000 packets",
            one_decimal,
            false,
        ),
        (
            "udp_trafgen_pps",
            "64-byte UDP with trafgen, all on one CPU, packets/s",
            kpps,
            true,
        ),
        ("tcp1_bps", "TCP, 1 stream, Gbit/s", gbps, true),
        ("tcp4_bps", "TCP, 4 streams, Gbit/s", gbps, true),
        ("flows_per_s", "new TCP connections/s", count, true),
    ];
    for (key, label, fmt, ratios) in rows {
        let cells: Vec<String> = present
            .iter()
            .map(|m| fmt(f(&e["modes"][*m][key])))
            .collect();
        let rs: Vec<String> = pairs
            .iter()
            .map(|(k, _)| {
                if ratios {
                    ratio(f(&e["ratios"][*k][key]))
                } else {
                    String::new()
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "| {label} | {} | {} |",
            cells.join(" | "),
            rs.join(" | ")
        );
    }
}

fn profile_table(out: &mut String, e: &Value) {
    let Some(p) = e["profiles"].as_object().filter(|p| !p.is_empty()) else {
        return;
    };
    let _ = writeln!(
        out,
        "\nThe programs in the real path: one more UDP run per xnat mode and the bare redirect \
         ({}) with the kernel's BPF run-time statistics on (`BPF_ENABLE_STATS`; they add a clock read per run, \
         so this run is not one of the measured rounds):\n\n| mode | program | runs per packet received | ns per run |\n|---|---|---:|---:|",
        if p.values().all(|v| v["sender"] == "xdp") {
            "XDP generator"
        } else {
            "XDP generator, or the AF_PACKET sender where the generator did not run"
        }
    );
    for (mode, v) in p {
        let rx = f(&v["rx_packets"]);
        for (name, s) in v["programs"].as_object().into_iter().flatten() {
            let label = e["modes"][mode.as_str()]["label"].as_str().unwrap_or(mode);
            let _ = writeln!(
                out,
                "| {label} | `{name}` | {:.2} | {} |",
                f(&s["runs"]) / rx,
                ns(f(&s["ns_per_run"]))
            );
        }
    }
}

/// The whole report as Markdown.
pub fn markdown(
    m: &Machine,
    micro: Option<&Value>,
    e2e: Option<&Value>,
    fl: Option<&Value>,
    fo: Option<&Value>,
    n64: Option<&Value>,
    notes: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# xnat benchmarks\n\nWritten by `{}` on {}. Every figure is a median over several runs; \
         every comparison is a ratio of figures measured in the same run, round by round \
         (this machine is shared and noisy; absolute figures move between runs, ratios much less).\n",
        m.command, m.date
    );
    let _ = writeln!(
        out,
        "Machine: {} CPUs ({}), Linux {}. Load average before / after the run: {} / {}. \
         The run took {:.0} s.\n",
        m.cpus, m.cpu_model, m.kernel, m.load_before, m.load_after, m.duration_s
    );

    let _ = writeln!(
        out,
        "## Targets (issues 4, 14, 16 and 18)\n\n| target | measured | |\n|---|---|---|"
    );
    for t in targets(micro, e2e, fl, fo) {
        let _ = writeln!(
            out,
            "| {} | {} | **{}** |",
            t.what,
            t.measured,
            verdict(t.pass)
        );
    }

    out.push('\n');
    micro::section(&mut out, micro);
    if let Some(e) = e2e {
        let _ = writeln!(
            out,
            "\n## 3. End to end (client — gateway — server in network namespaces)\n\n\
             Median of {} rounds; each round measures every gateway mode once per test, the \
             modes in rotating order, one test after the other: {} s of UDP ({} flows) with \
             each sender (the kernel's XDP generator, an AF_PACKET socket, trafgen), then \
             iperf3 for {} s (+1 s omitted) with 1 and then with 4 streams through each mode in \
             turn, then {} s of new TCP connections from {} threads. CPU layout: {}.\n",
            e["rounds"],
            e["udp_secs"],
            e["udp_flows"],
            e["tcp_secs"],
            e["flow_secs"],
            e["flow_threads"],
            e["cpu_layout"].as_str().unwrap_or("")
        );
        e2e_table(&mut out, e);
        profile_table(&mut out, e);
    }
    out.push('\n');
    flood::section(&mut out, fl);
    out.push('\n');
    failover::section(&mut out, fo);
    out.push('\n');
    nat64::section(&mut out, n64);
    let _ = writeln!(out, "\n## Method\n");
    micro::method(&mut out);
    let _ = writeln!(out, "\n{METHOD}\n");
    flood::method(&mut out);
    out.push('\n');
    failover::method(&mut out);
    out.push('\n');
    nat64::method(&mut out);
    if !notes.is_empty() {
        let _ = writeln!(out, "\n## Notes on this run\n");
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

const METHOD: &str = "\
**End to end.** One client — gateway — server topology of veth pairs per gateway mode, all built \
up front; the modes are measured round-robin (rotating order) so background load hits them alike. \
The xnat gateways run `xnat attach ext0 --ingress tc --internal 10.0.0.0/24 --pool 192.0.2.1 \
--timeout tcp-transitory=30`, the fast-path ones plus `--inside int0 --fast-path` and either \
`--inside-hook xdp --xdp-redirect ext0` (*XDP inside*: `xnat_inside_xdp` translates an \
established flow's frames on int0 and redirects them into ext0 before the kernel builds an skb) or \
`--inside-hook tc` (*TC inside*, what `auto` picks on a veth); the nftables one a `masquerade` \
rule in a `nat` postrouting chain (so conntrack), the plain one only forwards (the server has a \
route back). The *bare XDP redirect* one (issue 16's ceiling for the XDP fast path) has no NAT \
either, and the same route back: `xnat-bench --attach-redirect int0` holds \
`xnat_baseline_redirect_xdp` (nat-ebpf/src/bench_baseline.rs, in the `bench-baseline` object \
`xnat` never loads) attached to int0 in native mode for the run, with a fixed next hop: the \
loader (`--to ext0 --dst-mac` the server's eth0, whose MAC the topology fixes) writes ext0's \
ifindex, ext0's MAC and the server's MAC into a one-entry array before attaching. For an IPv4 \
frame it does the least any XDP forwarder must — the TTL decremented with the header checksum \
fixed incrementally, the two MACs written, `bpf_redirect` to ext0 by ifindex, as xnat's fast path \
redirects — and passes anything else (not IPv4, TTL ≤ 1) to the stack: no route or neighbour \
lookup (xnat's fast path does a FIB lookup, cached per CPU per timer tick), no NAT, no check that \
the egress device takes XDP frames (ext0 does here). It is the physical limit of this path. \
The server's eth0 has GRO on in every topology, which gives a veth a NAPI instance as \
a NIC has one: a veth takes XDP frames only then (or with an XDP program of its own), so ext0 \
takes the XDP fast path's redirects in every test, not only while the UDP sink is attached. XDP \
on int0 sees frames, not skbs, and cannot complete a checksum left to offload, so in the \
XDP-inside and bare-redirect topologies the client sends complete checksums (`ethtool -K eth0 \
tx off`), as packets off a wire have them; and a veth turns off its peer's TSO once it has an \
XDP program, so those two modes' TCP moves MSS-sized packets where the others move 64 KiB GSO \
packets: their TCP figures are not like for like, and the TCP target is judged on the TC-inside \
fast path.\n\n\
UDP, 64-byte frames in 8 flows (8 source ports, to the server's port 9), with three senders. In \
every case the server's veth drops them on arrival with a 17-instruction XDP program (attached \
only during UDP runs) and counts them (`rx_queue_0_xdp_drops`), so receiving costs next to \
nothing; the rate is that counter's increase over the window. *XDP generator* (the headline \
figures and the targets): the kernel's own traffic generator, the mechanism behind xdp-tools' \
xdp-trafficgen. `BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES` runs an XDP program of \
ours on the frame again and again, with the client's eth0 as the receiving device in its \
context, and carries out the verdict for real: `XDP_TX` sends each frame out of eth0 with \
`ndo_xdp_xmit`, straight into the gateway's int0 receive ring — no socket, skb or qdisc on the \
sending side, so one core offers 6–8 million frames per second here, more than twice what the \
fastest gateway forwards. The kernel recycles the frames' pages without copying the frame in again, and \
the gateway changes packets in place (TTL, NAT addresses, ports and checksums, MACs), so the \
program writes the whole 42-byte Ethernet, IPv4 and UDP header from immediates on every run \
(else a recycled frame would go out as the gateway left it, its TTL lower each time round), then \
sets one of the 8 source ports at random; the UDP checksum is 0 (none, allowed in IPv4), so the \
port needs no checksum fix. One syscall runs until a signal ends it: every call adds the program \
to the kernel's XDP dispatcher and removes it again, each time waiting for an RCU grace period. \
The generator's thread is pinned to CPU 0. For the run, int0 gets GRO on (its NAPI: without one \
a veth refuses XDP frames, where a NIC driver always has one), its NAPI threaded \
(`/sys/class/net/int0/threaded`) with the kernel thread pinned to CPU 1, and RPS off: the whole \
path of the frames through the gateway — frame to skb, the stack or the NAT, the transmit into \
ext0 and the server's XDP drop in its NAPI — runs on CPU 1, in one thread that needs no \
wake-up while the ring stays full, and the generator has CPU 0 to itself; the three settings are \
undone after the run. *Offered* is what the client's eth0 handed over (`tx_queue_0_xdp_xmit` and \
`tx_queue_0_xdp_xmit_errors` in `ethtool -S`), *taken* what int0's ring accepted; the rest was \
refused on the spot (a full ring), which shows the gateway saturated. *AF_PACKET* (for \
reference: the earlier headline): a sender thread pinned to CPU 0 writes prebuilt frames with \
`sendmmsg` on an AF_PACKET socket (qdisc bypassed) as fast as it can, and RPS steers int0's \
receive processing to CPU 1. *Offered* counts every frame the sender tried, *refused* the ones \
the gateway's full input queue turned away at once. With XDP inside (and with the bare \
redirect), int0's XDP program runs in the veth's NAPI, which the sender schedules on its own CPU (RPS acts only after XDP): there \
sender and gateway share CPU 0. *trafgen*: `trafgen -P 1` (netsniff-ng) pinned to CPU 0 with RPS \
off: sender, gateway and receiver on one core. Before the runs, a short burst per topology goes \
through to an nftables counter on the server instead, checking that packets arrive and that \
none kept an inside source address behind a NAT.\n\n\
TCP: iperf3 from the client namespace to the server namespace (1 s omitted at the start); a \
run's figure is the median of its half-second intervals (sender side), so that a moment of load \
from elsewhere on this shared machine, which only ever lowers a throughput, cannot decide a \
round as it can the run's mean. A round runs the modes' TCP tests back to back (a few seconds \
apart, before the new-flows tests): the host's background load drifts over tens of seconds, and \
runs a minute apart, as when each mode ran all its tests in one go, were compared as much with \
that drift as with each other (the TC-inside fast path came out at 0.68–0.84× nftables in some \
such runs and 1.11× in 20 back-to-back pairs of the same test). With 64 KiB GSO segments the end hosts' stacks limit TCP \
through every gateway here (forwarding a segment costs a gateway next to nothing next to \
sending and receiving it), so gateways that cost the same come out above or below one another \
by chance, round by round, by up to ±30 % on this machine; a strict *ratio ≥ 1* would pass or \
fail by a coin toss. *Not below* is therefore judged as *not measurably below*: it fails if \
xnat was below nftables in every round (a one-sided sign test: a chance of 1 in 2^rounds, 1/128 \
with the default 7 rounds, for equal gateways) or if the median ratio is under 0.90. \
New flows: one thread per inside address (8) connects to a TCP accept loop on the server in a \
loop, each from the next source port of its own sequence (a 4-tuple is never reused in a run), \
and closes with a reset (SO_LINGER 0) once connected: SYN, SYN-ACK, ACK, the server's FIN, RST — \
a new NAT binding each. A connection not established within 200 ms counts as failed. The window \
is 1 s: the xnat gateways have one pool address like masquerade, i.e. 64512 TCP ports, and a \
reset flow's mapping lives on for the transitory timeout (30 s here), so a longer burst would \
run out of ports (xnat then answers ICMP administratively prohibited, `No route to host`). New \
connections per second depend on the client's and the server's stacks as much as on the \
gateway: where all modes come out alike, the gateway is not what limits them. Finally one \
more UDP run per xnat mode and the bare redirect with the XDP generator and the kernel's BPF \
run-time statistics on (`BPF_ENABLE_STATS`) gives the time xnat's programs (and the bare \
redirect) take per packet in the real path.\n\n\
**What limits the end-to-end numbers.** Everything is software on a 2-CPU virtual machine \
shared with other work: veth pairs, no NIC. The UDP rate is what one core forwards (plus a \
near-free drop per packet) — provided the gateway CPU is saturated, i.e. the sender offers more \
than the gateway takes. The XDP generator offers well over what any mode takes, so its \
figures are the gateway's (a mode where the gateway kept up all the same is flagged below). The \
AF_PACKET sender tops out near 1 M packets/s, which the faster gateways reach: such a gateway \
keeps up, its CPU goes idle whenever its input queue runs empty, and the next packet costs the \
sender an inter-processor interrupt to wake it (RPS), which in a VM is an exit to the hypervisor \
— the *wake-up IPIs* row counts them. A saturated gateway needs none, so the faster the gateway, \
the fewer packets that sender offers, and its figures understate fast gateways; hence the XDP \
generator. trafgen was the first intended sender, but its zero-copy TX ring gives up (`Flushing \
TX_RING failed: Resource temporarily unavailable`) as soon as another CPU holds its packets in a \
backlog: its socket's send buffer fills, and the buffer limits cannot be raised inside a network \
namespace. So trafgen only runs with everything on one core, where the sender's own cost is a \
large share of each packet and the differences between gateways shrink. TCP throughput over veth \
moves 64 KiB GSO segments (but with XDP inside, see above), so it measures per-segment cost, not \
per-packet cost. The XDP ingress hook on ext0 (`--ingress xdp`) is not used end to end: on a \
veth it needs checksum offload off on the server, which would change every mode's TCP.";
