//! The NAT64 parts of BENCHMARKS.md (issue 19): its section and its
//! paragraph of the Method, marked parts (`super::super::splice`) that
//! `--only nat64` can replace in the existing file.

use std::fmt::Write as _;

use serde_json::Value;

use super::{f, gbps, kpps, pct, ratio, ratio_range};
use crate::bench::splice::{Anchor, Part};

/// The NAT64 section, before the Method (after the failover's).
pub const SECTION: Part = Part {
    name: "nat64",
    anchor: Anchor::Before("## Method"),
};
/// The NAT64 paragraph of the Method.
pub const METHOD: Part = Part {
    name: "nat64-method",
    anchor: Anchor::SectionEnd("## Method"),
};
/// Every part a NAT64 run writes.
pub const PARTS: [Part; 2] = [SECTION, METHOD];
/// The parts with figures (a run without NAT64 keeps them from the
/// existing file; the Method paragraph it writes itself).
pub const FIGURE_PARTS: [Part; 1] = [SECTION];

/// Columns, in order.
const MODES: [&str; 5] = ["xnat", "xnat_fast_tc", "xnat_fast_xdp", "tayga", "plain6"];
/// Ratio columns: (key in `ratios`, heading).
const PAIRS: [(&str, &str); 5] = [
    ("xnat/tayga", "xnat / TAYGA"),
    ("xnat/plain6", "xnat / plain"),
    ("tayga/plain6", "TAYGA / plain"),
    ("xnat_fast_tc/xnat", "fast path TC / xnat"),
    ("xnat_fast_xdp/xnat_fast_tc", "XDP inside / TC inside"),
];

/// An error on one line, not too long for a table's note.
fn one_line(e: &str) -> String {
    let s = e.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(400) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s,
    }
}

fn label<'a>(n: &'a Value, mode: &'a str) -> &'a str {
    n["labels"][mode].as_str().unwrap_or(mode)
}

/// Why Jool is not in the comparison, as this machine shows it.
fn jool(run: &Value) -> String {
    let kernel = run["kernel"].as_str().unwrap_or("?");
    let why = if run["kernel_modules"] == false {
        format!("this kernel ({kernel}) cannot load modules at all (no /proc/modules)")
    } else {
        format!("there are no headers for this kernel ({kernel}) here to build it against")
    };
    format!(
        "Jool could not be compared: it is an out-of-tree kernel module (Debian ships it as \
         source for DKMS, `jool-dkms`), and {why}."
    )
}

/// The section (its markers included); empty when NAT64 did not run.
pub(super) fn section(out: &mut String, n: Option<&Value>) {
    let Some(n) = n else {
        let _ = write!(out, "{}\n\n{}\n", SECTION.begin(), SECTION.end());
        return;
    };
    let mut body = String::new();
    let run = &n["run"];
    let _ = writeln!(
        body,
        "## 6. NAT64 against TAYGA (issue 19)\n\n\
         Measured by `{}` on {} ({:.0} s; load average before / after: {} / {}). An IPv6-only \
         client reaches an IPv4-only server at {} ({}) through a gateway: xnat \
         (`{}`; and with its fast path, `--fast-path` with the inside interface's outbound \
         path in TC or in XDP: where XDP pays, see the last column), TAYGA {} with nftables \
         masquerade (the common stateful NAT64 with TAYGA), or \
         plain IPv6 forwarding to the server's own IPv6 address as the ceiling of the path; \
         one topology per mode, measured round-robin, median of {} rounds, ratios the medians \
         of per-round ratios (see Method).\n",
        run["command"].as_str().unwrap_or("cargo xtask bench"),
        run["date"].as_str().unwrap_or("?"),
        f(&run["secs"]),
        run["load_before"].as_str().unwrap_or("?"),
        run["load_after"].as_str().unwrap_or("?"),
        n["target"].as_str().unwrap_or("?"),
        n["server"].as_str().unwrap_or("?"),
        n["xnat_command"]
            .as_str()
            .unwrap_or("xnat attach … --nat64"),
        n["tayga_version"].as_str().unwrap_or("(version unknown)"),
        n["rounds"],
    );
    if let Some(e) = n["error"].as_str() {
        let _ = writeln!(body, "Not measured: {}", one_line(e));
    } else {
        table(&mut body, n);
    }
    let mut notes = Vec::new();
    for (mode, e) in n["not_measured"].as_object().into_iter().flatten() {
        notes.push(format!(
            "{}: not measured: {}",
            label(n, mode),
            one_line(e.as_str().unwrap_or("?"))
        ));
    }
    for (mode, tests) in n["errors"].as_object().into_iter().flatten() {
        for (test, e) in tests.as_object().into_iter().flatten() {
            notes.push(format!(
                "{}: a `{test}` run failed (its figure is missing from the median): {}",
                label(n, mode),
                one_line(e.as_str().unwrap_or("?"))
            ));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(body);
    }
    for note in notes {
        let _ = writeln!(body, "- {note}");
    }
    let _ = writeln!(body, "\n{}", jool(run));
    out.push_str(&SECTION.block(&body));
}

fn table(body: &mut String, n: &Value) {
    let present: Vec<&str> = MODES
        .into_iter()
        .filter(|m| n["modes"].get(*m).is_some())
        .collect();
    let pairs: Vec<(&str, &str)> = PAIRS
        .into_iter()
        .filter(|(k, _)| n["ratios"].get(*k).is_some())
        .collect();
    let heads: Vec<&str> = present.iter().map(|m| label(n, m)).collect();
    let _ = writeln!(
        body,
        "| | {} | {} |\n|---|{}{}",
        heads.join(" | "),
        pairs.iter().map(|p| p.1).collect::<Vec<_>>().join(" | "),
        "---:|".repeat(present.len()),
        "---:|".repeat(pairs.len())
    );
    type Fmt = fn(f64) -> String;
    // (key, label, format, whether a ratio between modes means anything)
    let rows: [(&str, String, Fmt, bool); 7] = [
        (
            "udp_pps",
            format!(
                "{}-byte IPv6 UDP (64 bytes once translated), packets/s at the server (XDP \
                 generator)",
                n["frame_len"]
            ),
            kpps,
            true,
        ),
        (
            "udp_offered_pps",
            "… offered by the generator, packets/s".into(),
            kpps,
            false,
        ),
        (
            "udp_accepted_pps",
            "… taken into the gateway's receive ring, packets/s".into(),
            kpps,
            false,
        ),
        (
            "udp_gw_cpu_busy_pct",
            "… gateway CPU busy".into(),
            pct,
            false,
        ),
        (
            "udp_translator_cpu_pct",
            "… of which in TAYGA's process (the rest mostly in int0's NAPI thread)".into(),
            pct,
            false,
        ),
        (
            "tcp_up_bps",
            "TCP upload (client → server), 1 stream, Gbit/s".into(),
            gbps,
            true,
        ),
        (
            "tcp_down_bps",
            "TCP download (server → client), 1 stream, Gbit/s".into(),
            gbps,
            true,
        ),
    ];
    for (key, name, fmt, ratios) in rows {
        let cells: Vec<String> = present
            .iter()
            .map(|m| fmt(f(&n["modes"][*m][key])))
            .collect();
        let rs: Vec<String> = pairs
            .iter()
            .map(|(k, _)| {
                if ratios {
                    ratio(f(&n["ratios"][*k][key]))
                } else {
                    String::new()
                }
            })
            .collect();
        let _ = writeln!(
            body,
            "| {name} | {} | {} |",
            cells.join(" | "),
            rs.join(" | ")
        );
    }
    let r = &n["ratios"]["xnat/tayga"];
    if r.is_object() {
        let _ = writeln!(
            body,
            "\nxnat / TAYGA, with the range of the per-round ratios: UDP {}; TCP upload {}; TCP \
             download {}.",
            ratio_range(r, "udp_pps"),
            ratio_range(r, "tcp_up_bps"),
            ratio_range(r, "tcp_down_bps")
        );
    }
}

/// The Method's paragraph on NAT64.
pub(super) fn method(out: &mut String) {
    out.push_str(&METHOD.block(METHOD_TEXT));
}

const METHOD_TEXT: &str = "\
**NAT64 against TAYGA.** xtask/src/bench/nat64/ builds, for each mode, an IPv6-only client \
(2001:db8:64::2/64), a gateway (int0 2001:db8:64::1/64 inside, ext0 198.51.100.1/24 outside, \
its default route via the server's 198.51.100.2, IPv4 and IPv6 forwarding on) and an \
IPv4-only server (198.51.100.2/24 and 93.184.216.34/32, IPv6 off) in network namespaces, the \
offloads of their veths at the defaults (GRO on the server's, RPS as end to end). The client \
reaches the server at 64:ff9b::93.184.216.34 and the server sees the gateway's 198.51.100.1. \
Not a documentation address for the server: the well-known prefix must not carry non-global \
IPv4 addresses (RFC 6052 section 3.1), and TAYGA, like RFC 6890, counts 192.0.2.0/24, \
198.51.100.0/24, 203.0.113.0/24 and 198.18.0.0/15 among them and refuses to translate them \
(xnat refuses this network, RFC 1918, the shared address space, loopback, link-local and \
multicast and above); 93.184.216.34, example.com's address for years, is global, and the \
namespaces are closed. *xnat*: `xnat attach ext0 --ingress tc --masquerade --inside int0 \
--nat64 64:ff9b::/96`, the NAPT pool ext0's address; *its fast path* the same with \
`--fast-path --inside-hook tc` (the inbound IPv6 packets redirected to the client by the \
program, not forwarded by the gateway's IPv6 stack; outbound as without it: NAT64's TC \
program forwards by FIB and redirect either way) and with `--fast-path --inside-hook xdp \
--xdp-redirect ext0` (the client's established flows translated in XDP on int0, \
`xnat_nat64_out_xdp`, before an skb exists; ext0 takes the XDP frames, its peer having NAPI \
with GRO on; the client's tx checksum offload off, as for the end-to-end benchmark's XDP fast \
path, so its TCP sends MSS-sized segments: for TCP the TC fast path is the comparison, for UDP \
the two fast paths are, in the same rounds). *TAYGA* (Debian's tayga, in the \
foreground with `tayga -d --config FILE`): `tun-device nat64`, `ipv4-addr 192.168.255.1`, \
`ipv6-addr 2001:db8:64:ffff::1`, `prefix 64:ff9b::/96`, `dynamic-pool 192.168.255.0/24`; \
routes for the prefix and the pool to its TUN device; and an nftables `masquerade` rule on ext0 \
(conntrack) that puts the pool behind ext0's address: TAYGA is stateless, one pool address per \
IPv6 host, and this NAT44 behind it is how it serves as a stateful NAT64 (its man page). It \
translates in user space, a read(2) and a write(2) on its TUN device per packet. *Plain IPv6 \
forwarding*, the ceiling of the path: the same topology with IPv6 on the external link too \
(2001:db8:65::/64), the client sending to the server's 2001:db8:65::2, nothing translated. \
UDP: the end-to-end benchmark's XDP generator and sink, with the IPv6 twin of its frame: 84 \
bytes (Ethernet, IPv6, UDP and the same 22-byte payload; 64 bytes once translated), 8 source \
ports. IPv6 UDP must carry a checksum, so there the generator's program sets it with the port: \
k more on the port, k less on the checksum (the template's checksum is at least 8, so the \
difference never carries). The server's XDP sink counts and drops the datagrams to port 9. The \
CPUs as end to end: the generator alone on CPU 0, int0's NAPI threaded and its thread pinned to \
CPU 1; during the UDP runs TAYGA's process is pinned to CPU 1 too, so every gateway does all \
its work on one CPU (xnat and plain forwarding in the NAPI thread, TAYGA there and in its \
process). Overloaded, that CPU is shared between the NAPI thread, which takes in all the ring \
holds and hands the IPv6 packets to the TUN device, and TAYGA's process, which translates them \
and sends the IPv4 packets on (the table shows the process's share); what the TUN device's queue (500 \
packets) cannot hold is dropped there, so TAYGA's figure is its rate on one saturated core, not \
a rate without loss. Before the runs, each topology gets a ping and a burst of the generator's frames \
(1,000 counted by nftables on the server) that must reach the server's UDP stack without a \
checksum error (`InCsumErrors` in /proc/net/snmp) and, through a NAT64, from the gateway's \
address. TCP: iperf3 -6 from the client to the server's IPv6 address (the server's iperf3 \
listening on IPv4 alone where the gateway translates), 1 stream each way (the download with \
`-R`), the median of its half-second intervals, the modes back to back as end to end. A mode \
whose gateway cannot start or whose path fails the check is not measured, and section 6 says \
why. `--quick` runs 2 shorter rounds instead of 5. `--only nat64` rewrites only section 6 and \
this paragraph (between `<!-- bench:nat64… -->` comments); the other runs keep them from the \
existing file, as for the flood.";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run() -> Value {
        json!({"command": "cargo xtask bench --only nat64", "date": "d", "secs": 100.0,
               "load_before": "1", "load_after": "1", "kernel": "6.18.0",
               "kernel_modules": false})
    }

    #[test]
    fn a_mode_not_measured_says_why_and_the_others_are_shown() {
        let n = json!({
            "run": run(), "rounds": 5, "frame_len": 84, "target": "64:ff9b::5db8:d822",
            "server": "93.184.216.34", "xnat_command": "xnat attach ext0 --nat64",
            "labels": {"xnat": "xnat NAT64", "tayga": "TAYGA + nftables masquerade",
                       "plain6": "plain IPv6 forwarding (no translation)"},
            "modes": {
                "tayga": {"udp_pps": 2.0e5, "tcp_up_bps": 2.0e9},
                "plain6": {"udp_pps": 1.0e6, "tcp_up_bps": 1.0e10},
            },
            "ratios": {"tayga/plain6": {"udp_pps": 0.2}, "plain6/tayga": {"udp_pps": 5.0}},
            "not_measured": {"xnat": "the xnat agent exited:\n    error: unexpected argument '--nat64'"},
            "errors": {},
        });
        let mut out = String::new();
        section(&mut out, Some(&n));
        assert!(out.starts_with(&SECTION.begin()));
        assert!(out.trim_end().ends_with(&SECTION.end()));
        assert!(out.contains(
            "- xnat NAT64: not measured: the xnat agent exited: error: unexpected argument '--nat64'"
        ));
        assert!(out.contains("| | TAYGA + nftables masquerade | plain IPv6 forwarding (no translation) | TAYGA / plain |"));
        assert!(out.contains("| 200 k | 1000 k | 0.20× |"));
        assert!(!out.contains("xnat / TAYGA"));
        assert!(out.contains("cannot load modules at all"));
    }

    #[test]
    fn not_run_leaves_empty_markers() {
        let mut out = String::new();
        section(&mut out, None);
        assert_eq!(out, format!("{}\n\n{}\n", SECTION.begin(), SECTION.end()));
    }

    #[test]
    fn long_errors_are_cut() {
        let e = "x ".repeat(500);
        let line = one_line(&e);
        assert!(line.ends_with('…'));
        assert_eq!(line.chars().count(), 401);
    }
}
