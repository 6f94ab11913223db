//! The BPF_PROG_TEST_RUN parts of BENCHMARKS.md (`xnat-bench`): their rows
//! in the Targets table, sections 1 and 2, and their paragraphs of the
//! Method, each a marked part (`super::super::splice`) that `--only micro`
//! replaces in the existing file and `--only e2e` keeps from it.

use std::fmt::Write as _;

use serde_json::Value;

use super::{case, f, ns, ratio};
use crate::bench::{
    rounds::median,
    splice::{Anchor, Part},
};

/// Sections 1 and 2, before the flood's section (after section 3 when the
/// file has no block of its own to replace).
pub const SECTION: Part = Part {
    name: "micro",
    anchor: Anchor::Before("<!-- bench:flood begin -->"),
};
/// The Method's paragraphs on them, first in the Method.
pub const METHOD: Part = Part {
    name: "micro-method",
    anchor: Anchor::After("## Method"),
};

const fn row(name: &'static str) -> Part {
    Part {
        name,
        anchor: Anchor::TableEnd("## Targets"),
    }
}

/// Their rows in the Targets table, in the order `targets` writes them.
pub const ESTABLISHED: Part = row("micro-target-established");
pub const ESTABLISHED_NOOP: Part = row("micro-target-established-noop");
pub const NEW_BINDING: Part = row("micro-target-new-binding");
pub const FLAT: Part = row("micro-target-flat");
pub const FLAT_RANDOM: Part = row("micro-target-flat-random");
pub const RANDOM_XDP: Part = row("micro-target-random-xdp");
pub const RANDOM_XDP_MINIMAL: Part = row("micro-target-random-xdp-minimal");
pub const RANDOM_TC: Part = row("micro-target-random-tc");
pub const RANDOM_TC_MINIMAL: Part = row("micro-target-random-tc-minimal");
pub const MEMORY: Part = row("micro-target-memory");
pub const EXPIRY: Part = row("micro-target-expiry");

/// Every part a run with `xnat-bench` writes.
pub const PARTS: [Part; 13] = [
    ESTABLISHED,
    ESTABLISHED_NOOP,
    NEW_BINDING,
    FLAT,
    FLAT_RANDOM,
    RANDOM_XDP,
    RANDOM_XDP_MINIMAL,
    RANDOM_TC,
    RANDOM_TC_MINIMAL,
    MEMORY,
    EXPIRY,
    SECTION,
    METHOD,
];
/// The parts with figures (a run without `xnat-bench` keeps them from the
/// existing file; the Method paragraphs it writes itself).
pub const FIGURE_PARTS: [Part; 12] = [
    ESTABLISHED,
    ESTABLISHED_NOOP,
    NEW_BINDING,
    FLAT,
    FLAT_RANDOM,
    RANDOM_XDP,
    RANDOM_XDP_MINIMAL,
    RANDOM_TC,
    RANDOM_TC_MINIMAL,
    MEMORY,
    EXPIRY,
    SECTION,
];

/// A target's first cell with the marker of its row.
pub(super) fn marked(what: &str, part: Part) -> String {
    format!("{what} {}", part.inline())
}

/// Whether a per-packet case belongs to the NAT64 table rather than the
/// main one: NAT64's packets, and the NAT44 packets measured beside them
/// the same way.
pub(super) fn in_nat64_table(id: &str) -> bool {
    id.starts_with("nat64_") || id.starts_with("loop_") || id.starts_with("fast_")
}

/// Sections 1 and 2 (their markers included); empty when `xnat-bench` did
/// not run.
pub(super) fn section(out: &mut String, micro: Option<&Value>) {
    let Some(mi) = micro else {
        let _ = write!(out, "{}\n\n{}\n", SECTION.begin(), SECTION.end());
        return;
    };
    let mut body = String::new();
    let run = &mi["run"];
    let measured = if run.is_object() {
        format!(
            "Measured by `{}` on {} ({:.0} s; load average before / after: {} / {}). ",
            run["command"].as_str().unwrap_or("cargo xtask bench"),
            run["date"].as_str().unwrap_or("?"),
            f(&run["secs"]),
            run["load_before"].as_str().unwrap_or("?"),
            run["load_after"].as_str().unwrap_or("?"),
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        body,
        "## 1. Per-packet cost (BPF_PROG_TEST_RUN)\n\n{measured}{}-byte frames, {} bindings in \
         the tables, median of {} rounds; `repeat` = {} runs of the program per syscall, `loop` \
         = {} syscalls of one run each per round (see Method).\n",
        mi["frame_len"], mi["per_packet"]["bindings"], mi["runs"], mi["repeat"], mi["loop_calls"]
    );
    super::per_packet_table(&mut body, mi);
    super::nanoseconds_table(&mut body, mi);
    nat64_table(&mut body, mi);
    let _ = writeln!(body, "\n## 2. Scale\n");
    super::scale_tables(&mut body, mi);
    super::log_volume_table(&mut body, mi);
    out.push_str(&SECTION.block(&body));
}

/// The median of the per-round ratios of case `a` to case `b`.
fn ratio_of(a: &Value, b: &Value) -> f64 {
    let rounds = |c: &Value| -> Vec<f64> {
        c["samples_ns"]
            .as_array()
            .map(|s| s.iter().map(f).collect())
            .unwrap_or_default()
    };
    let r: Vec<f64> = rounds(a)
        .iter()
        .zip(rounds(b))
        .map(|(x, y)| x / y)
        .collect();
    median(&r)
}

/// The NAT64 rows, each beside the NAT44 packets of its hook and
/// protocol, all measured as loops.
fn nat64_table(out: &mut String, m: &Value) {
    let cases = &m["per_packet"]["cases"];
    let Some(all) = cases.as_array() else {
        return;
    };
    let rows: Vec<&Value> = all
        .iter()
        .filter(|c| c["id"].as_str().is_some_and(in_nat64_table))
        .collect();
    if !rows
        .iter()
        .any(|c| c["id"].as_str().is_some_and(|i| i.starts_with("nat64_")))
    {
        return;
    }
    let n64 = &m["per_packet"]["nat64"];
    // The NAT44 loops against their own `repeat` rows: what the method
    // alone adds.
    let method: Vec<f64> = rows
        .iter()
        .filter(|c| c["id"].as_str().is_some_and(|i| i.starts_with("loop_")))
        .map(|c| f(&c["against"]["ratio"]))
        .filter(|r| r.is_finite())
        .collect();
    let (lo, hi) = method
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(*r), hi.max(*r))
        });
    let _ = writeln!(
        out,
        "\n### NAT64 (issue 19)\n\n\
         An established NAT64 flow each way, UDP and TCP: the IPv6 host {} and the IPv4 server \
         {} at {} (NAT64 on with {}), the flow's NAT44 binding the host's stand-in's ({}), in \
         the tables of the rows above. Inbound, the 64-byte IPv4 packet to the binding's public \
         endpoint leaves as an 84-byte IPv6 packet to the host (verdict pass: to the stack); \
         outbound, the host's 84-byte IPv6 packet leaves as the 64-byte IPv4 packet from the \
         public endpoint, forwarded by the program itself (verdict redirect, the FIB lookup \
         included; see Method). Each row is a `loop`, the NAT44 ones too: a NAT64 packet \
         changes protocol and size, so a `repeat` run would translate its own output (see \
         Method), and a NAT44 packet costs more as a loop (here {}–{} its `repeat` row in the \
         table above: the syscall around each run leaves colder caches), so NAT64 is judged \
         against the NAT44 packets of its hook and protocol measured the same way in the same \
         rounds (× NAT44: the median of the per-round ratios).\n",
        n64["host"].as_str().unwrap_or("?"),
        n64["server"].as_str().unwrap_or("?"),
        n64["server6"].as_str().unwrap_or("?"),
        n64["prefix"].as_str().unwrap_or("?"),
        n64["stand_in"].as_str().unwrap_or("?"),
        ratio(lo),
        ratio(hi),
    );
    let _ = writeln!(
        out,
        "| case | program | ns/packet | × no-op | × NAT44 (same hook and protocol, loop) |\n\
         |---|---|---:|---:|---:|"
    );
    for c in rows {
        let id = c["id"].as_str().unwrap_or("");
        let against = &c["against"];
        let vs = if id.starts_with("loop_") {
            // Its own `repeat` row is in the table above.
            String::new()
        } else if id.starts_with("fast_") {
            format!("{} egress TC", ratio(f(&against["ratio"])))
        } else if id.starts_with("nat64_out_") {
            let fast = id
                .strip_prefix("nat64_out_tc_")
                .and_then(|p| case(cases, &format!("fast_xnat_inside_tc_{p}")))
                .map(|b| format!("; {} the fast path", ratio(ratio_of(c, b))))
                .unwrap_or_default();
            format!("**{}** egress TC{fast}", ratio(f(&against["ratio"])))
        } else {
            format!("**{}**", ratio(f(&against["ratio"])))
        };
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {vs} |",
            c["label"].as_str().unwrap_or(""),
            c["prog"].as_str().unwrap_or(""),
            ns(f(&c["ns"])),
            ratio(f(&c["ratio"])),
        );
    }
}

/// The Method's paragraphs on the per-packet cost and the scale.
pub(super) fn method(out: &mut String) {
    out.push_str(&METHOD.block(METHOD_TEXT));
}

const METHOD_TEXT: &str = "\
**Per-packet cost.** `xnat-bench` (tests/src/bench/) loads the compiled object the `xnat` binary \
embeds, with NAPT configured (64 pool addresses, address-dependent filtering, RFC timeouts) and \
the tables filled through `BPF_MAP_UPDATE_BATCH`, and runs the programs with `BPF_PROG_TEST_RUN` \
without attaching them. The kernel does not restore the packet between the iterations of one \
`repeat` run, so a translation program would see its own output from the second iteration on. \
The repeated runs therefore use *cycle flows*: the translated packet is itself a packet of \
another established binding whose translation is the original packet again (`NAPT_IN[P:pp] = \
I:ip` and `NAPT_IN[I:ip] = P:pp`, each with its mapping holding its session as the first; for \
egress the public address is also an inside address). Every iteration does the full work of one \
packet of an established flow — static-table miss, CONFIG, mapping lookups, session match and \
update, address and port rewrite with incremental checksums, counters — and the run is rejected \
unless the `*_translated` counter grew by exactly `repeat` and no mapping or session was created. \
ns/packet of a `repeat` run is the thread's CPU time over the syscall divided by `repeat` (the \
kernel's own `duration` is whole nanoseconds, too coarse for the no-op; both are in the JSON). \
Work that cannot repeat on one buffer — a new binding per packet, a different flow per packet — \
runs as a `loop` of single-run syscalls: the mean of the kernel's per-call `duration`, minus the \
same loop with the no-op program in the same round, plus the no-op's `repeat` figure. The new-binding case runs on tables of its own (with room for every binding it creates), so \
the established-flow cases keep exactly the bindings they report; they grow by the bindings of \
each round (so later rounds cost more: fuller tables, longer bucket chains), and the minimal \
NAT's new binding (`xnat_baseline_new_tc`: the outbound lookup that misses, the public port \
reserved by a `BPF_NOEXIST` insert into the inbound table, the outbound entry inserted, the \
rewrite) runs on its own tables of the same size in the same rounds, every binding checked to be \
made. The no-op \
is `xnat_noop_xdp`; TC programs are compared to it too (the test-run loop is the same; TC \
programs additionally pay for the skb helpers). The ratio to a no-op moves with the machine \
(the no-op's fixed cost differs), so each established-flow case is also judged against the \
*minimal NAT* (`nat-ebpf/src/bench_baseline.rs`, a separate object `xnat` never loads) on the \
same cycle flow in the same rounds: parse to the ports, one hash lookup keyed by the translated \
endpoint, address and port rewrite with incremental checksums (in TC through the kernel's \
checksum helper, as a correct TC NAT must), nothing else. The fast path is off in these runs \
(its FIB lookup and redirect need real interfaces), but in one NAT44 row beside NAT64's (below). *Where the nanoseconds go*: the established-flow cases \
again (`xnat-bench --established-only`: 3 rounds of 2,000,000 runs each) under `perf record -g` \
(5 kHz); a sample counts for the innermost xnat program in its call chain, as the program's own \
instructions if it was there, else by the kernel function the program had called (hash-table \
lookup, LPM-trie lookup, checksum helper, a BPF subprogram, anything else); the shares split the \
program's time from the per-packet table (less the no-op's, which is the test-run loop).\n\n\
**NAT64 per packet** (tests/src/bench/nat64.rs). The per-packet object gets NAT64 as `xnat attach \
--nat64 --inside … --ingress xdp` sets it up: `xnat_nat64_out_tc`, `xnat_nat64_out_error_tc`, \
`xnat_nat64_out_nat44_tc` and `xnat_nat64_in_tc` in `NAT64_TC_PROGS`, `xnat_nat64_in_xdp` in \
`NAT64_XDP_PROGS`, at their slots; 64:ff9b::/96 in `NAT64`; the host's stand-in (the one the data \
plane's first probe gives it) in `NAT64_HOSTS` and `NAT64_IDS`; the stand-in's NAT44 binding of \
each flow written as the data plane makes it (a mapping holding its first session, and its \
`NAPT_IN` entry). NAT44 reads none of it. Each flow is checked once each way before the rounds: \
inbound, the IPv6 packet from the server under the prefix to the host's port with a correct \
transport checksum over the IPv6 pseudo-header; outbound, the IPv4 packet from the public \
endpoint to the server, every checksum correct, to the next hop's MAC. A NAT64 packet cannot be \
measured by `repeat`: `BPF_PROG_TEST_RUN` runs the program again on the skb or XDP buffer the \
last iteration left (net/bpf/test_run.c, `bpf_test_run`), which after the first one is an IPv6 \
packet inbound (20 bytes longer, the XDP buffer's head moved) and an IPv4 one outbound, and no \
cycle flow turns an IPv6 packet into an IPv6 packet. So every NAT64 row is a `loop`, and so are \
the NAT44 rows it is judged against, in the same rounds: a loop's single run starts from caches \
the syscall around it has cooled, which a run of a million on one buffer does not see. *Inbound*: \
`xnat_ingress_xdp` (or `_tc`) on the IPv4 packet from the server to the public endpoint — NAT44 \
inbound (the NAPT_IN and NAPT_OUT lookups, filtering, the session, the rewrite to the stand-in), \
the check for a stand-in, the tail call, then in `xnat_nat64_in_xdp` (`_tc`): the stand-in's host \
in `NAT64_IDS`, the transport checksum carried to the IPv6 pseudo-header, 20 bytes more header \
(`bpf_xdp_adjust_head`, the Ethernet header moved; in TC `bpf_skb_change_proto`) and the IPv6 \
header written; the stack's routing of the IPv6 packet afterwards is not in it. *Outbound*: \
`xnat_inside_tc` on the host's IPv6 frame as it arrives on an inside interface — the IPv6 check \
and the tail call; in `xnat_nat64_out_tc` the prefix, the host's stand-in in `NAT64_HOSTS`, \
`bpf_check_mtu` against the external interface, the checksum carried to the IPv4 pseudo-header, \
`bpf_skb_change_proto` (20 bytes less) and the IPv4 header written, the tail call; in \
`xnat_nat64_out_nat44_tc` NAT44 outbound (the mapping, the session, the rewrite to the public \
endpoint), the FIB lookup, the TTL, the MAC addresses and `bpf_redirect`. The FIB lookup is xnat's \
per-CPU route cache, which calls `bpf_fib_lookup` once per timer tick: a loop's packets come \
microseconds apart, so nearly all of them find their route there, as a flow's packets do on a busy \
gateway. `BPF_PROG_TEST_RUN` does not carry out the redirect, so the transmit is not in it. These syscalls run in a network namespace of the \
benchmark's own: the skb arrives on a veth `in0` (the `__sk_buff` context's ifindex), `ext0` \
(192.0.2.1/24, the external interface the agent would write into `FAST_PATH`) has the default \
route via 192.0.2.2, a permanent neighbour, and IPv4 forwarding is on, so the lookup succeeds as \
on a gateway. NAT44 never forwards the packet itself outbound but with the fast path, so two \
NAT44 rows are beside the outbound one: the egress TC packet (translation only: the stack routed \
it before), and the fast path on the same hook, `xnat_inside_tc` with `--fast-path` on an \
instance of its own (the same bindings, the same namespace): translation, FIB lookup and \
redirect, what NAT64's outbound path does after its own translation.\n\n\
**Scale.** One instance per size, tables sized to the bindings (as `--max-mappings` / \
`--max-sessions` would), each binding = a mapping (NAPT_OUT + NAPT_IN) holding its one \
session, as the data plane makes a binding (nothing in SESSIONS or FILTER, which keep only \
further sessions and remote addresses); the scale cases run interleaved in the same rounds. *One established flow* keeps \
hitting the same entries (hot in the CPU caches: measures the hash tables' algorithmic cost); \
*random established flow* picks a different binding for every packet (the cache and TLB misses \
real traffic over many flows pays); the minimal NAT gets the same bindings in its own table and \
runs the same random flows, so its figures are what one hash lookup's misses cost at each scale, \
the floor under any hash-table NAT. Memory is each map's own accounting (`memlock` in fdinfo). \
The sweep is the agent's `Sweeper` on the maps (and the expiry walk `xnat_expire`) pinned under \
/sys/fs/bpf/xnat-bench-PID/, timed (wall, and user + system CPU of the thread, which the kernel \
walk runs in, by getrusage) with every binding live and with every binding a day past its timeout \
(the tables are refilled before each such run); once reading the mappings out \
(`--expiry-walk user`), once walking in the kernel as the agent does by default, with a ping \
steered to the sweep's CPU meanwhile.";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::bench::{report, splice};

    fn machine() -> report::Machine {
        report::Machine {
            cpus: 2,
            cpu_model: "cpu".into(),
            kernel: "6.18.0".into(),
            date: "d".into(),
            load_before: "1".into(),
            load_after: "1".into(),
            duration_s: 1.0,
            command: "cargo xtask bench".into(),
        }
    }

    fn sample(id: &str, ns: f64, against: Option<(&str, f64)>) -> Value {
        json!({
            "id": id, "label": id, "prog": "p", "method": "loop", "bindings": 1000,
            "ns": ns, "ratio": ns / 7.0, "samples_ns": [ns, ns],
            "against": against.map_or(Value::Null, |(a, r)| json!({"id": a, "ratio": r})),
        })
    }

    /// `xnat-bench`'s output with the no-op at `noop` ns and one NAT64 row
    /// beside its NAT44 loops.
    fn micro(noop: f64) -> Value {
        json!({
            "frame_len": 64, "runs": 2, "repeat": 10, "loop_calls": 10,
            "run": {"command": "cargo xtask bench --only micro", "date": "d", "secs": 1.0,
                    "load_before": "1", "load_after": "1"},
            "per_packet": {
                "bindings": 1000,
                "nat64": {"prefix": "64:ff9b::/96", "host": "2001:db8:64::2",
                          "server": "93.184.216.34", "server6": "64:ff9b::5db8:d822",
                          "stand_in": "0.1.2.3"},
                "cases": [
                    sample("noop", noop, None),
                    sample("xnat_egress_tc_udp", 50.0, None),
                    sample("loop_xnat_egress_tc_udp", 70.0, Some(("xnat_egress_tc_udp", 1.4))),
                    sample("nat64_out_tc_udp", 210.0, Some(("loop_xnat_egress_tc_udp", 3.0))),
                    sample("fast_xnat_inside_tc_udp", 105.0, Some(("loop_xnat_egress_tc_udp", 1.5))),
                ],
            },
            "scale": {"scales": [1000], "cases": []},
        })
    }

    fn count(doc: &str, what: &str) -> usize {
        doc.matches(what).count()
    }

    fn has(doc: &str, p: &Part) -> bool {
        count(doc, &p.inline()) == 1 || (count(doc, &p.begin()) == 1 && count(doc, &p.end()) == 1)
    }

    #[test]
    fn every_part_is_written_run_or_not() {
        for m in [None, Some(micro(7.0))] {
            let md = report::markdown(&machine(), m.as_ref(), None, None, None, None, &[]);
            for p in &PARTS {
                assert!(has(&md, p), "{} missing:\n{md}", p.name);
            }
        }
    }

    #[test]
    fn nat64_rows_have_their_own_table() {
        let m = micro(7.0);
        let md = report::markdown(&machine(), Some(&m), None, None, None, None, &[]);
        let (main, nat64) = md.split_once("### NAT64").expect("a NAT64 subsection");
        assert!(!main.contains("| nat64_out_tc_udp |"), "{main}");
        assert!(main.contains("| xnat_egress_tc_udp |"));
        assert!(nat64.contains("| nat64_out_tc_udp | `p` | 210.0 | 30.00× | **3.00×** egress TC; 2.00× the fast path |"), "{nat64}");
        assert!(
            nat64.contains("| fast_xnat_inside_tc_udp | `p` | 105.0 | 15.00× | 1.50× egress TC |")
        );
        assert!(
            nat64.contains("(here 1.40×–1.40× its `repeat` row in the table above: "),
            "{nat64}"
        );
    }

    #[test]
    fn a_micro_run_replaces_only_its_parts() {
        let e2e_only = "| TCP throughput: not below nftables masquerade | 1.01× | **PASS** |";
        let old = report::markdown(&machine(), Some(&micro(7.0)), None, None, None, None, &[])
            .replacen(
                "| TCP throughput: not below nftables masquerade | not run | **n/a** |",
                e2e_only,
                1,
            );
        assert!(old.contains(e2e_only));
        let new = report::markdown(&machine(), Some(&micro(9.0)), None, None, None, None, &[]);
        let out = splice::transplant(&new, &old, &PARTS).unwrap();
        assert!(out.contains(e2e_only), "the end-to-end row was lost");
        assert!(out.contains("| noop | `p` | loop | 9.0 |"), "{out}");
        assert!(!out.contains("| noop | `p` | loop | 7.0 |"));
        for p in &PARTS {
            assert!(has(&out, p), "{} not once in:\n{out}", p.name);
        }
        // And a run without it keeps them.
        let none = report::markdown(&machine(), None, None, None, None, None, &[]);
        let kept = splice::transplant(&out, &none, &FIGURE_PARTS).unwrap();
        assert!(kept.contains("| noop | `p` | loop | 9.0 |"));
    }
}
