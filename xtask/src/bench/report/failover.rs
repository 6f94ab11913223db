//! The failover parts of BENCHMARKS.md (issue 18): its row in the Targets
//! table, its section and its paragraph of the Method, each a marked part
//! (`super::super::splice`) that `--only failover` can replace in the
//! existing file.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Target, f};
use crate::bench::splice::{Anchor, Part};

/// The failover's row in the Targets table.
pub const TARGET: Part = Part {
    name: "failover-target",
    anchor: Anchor::TableEnd("## Targets"),
};
/// The failover's section, before the Method (after the flood's).
pub const SECTION: Part = Part {
    name: "failover",
    anchor: Anchor::Before("## Method"),
};
/// The failover's paragraph of the Method.
pub const METHOD: Part = Part {
    name: "failover-method",
    anchor: Anchor::SectionEnd("## Method"),
};
/// Every part a failover run writes.
pub const PARTS: [Part; 3] = [TARGET, SECTION, METHOD];
/// The parts with figures (a run without the failover keeps them from the
/// existing file; the Method paragraph it writes itself).
pub const FIGURE_PARTS: [Part; 2] = [TARGET, SECTION];

const WHAT: &str = "the active gateway of a pair dies: 0 TCP connections reset, one public \
                    endpoint per stream, every stream back within 1 s (median) (issue 18)";

/// The interruption a run's streams suffered: the last of them to resume.
const STREAM_KEYS: [&str; 4] = [
    "udp_at_server_s",
    "udp_echo_s",
    "tcp_upload_s",
    "tcp_download_s",
];

/// Rows of the table: (JSON key, label).
const ROWS: [(&str, &str); 7] = [
    ("udp_at_server_s", "first UDP datagram at the server"),
    ("udp_echo_s", "first UDP echo back at the client"),
    ("tcp_upload_s", "TCP upload moving again"),
    ("tcp_download_s", "TCP download moving again"),
    (
        "gw2_master_s",
        "gw2 VRRP master (its keepalived notify script ran)",
    ),
    ("route_withdrawn_s", "router: the pool's route via gw1 gone"),
    ("route_moved_s", "router: the pool routed via gw2"),
];

fn runs(fo: &Value) -> Vec<&Value> {
    fo["per_run"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn clean(r: &Value) -> bool {
    r.get("error").is_none() && r["problems"].as_array().is_some_and(|p| p.is_empty())
}

/// The last stream of run `r` to resume, s (NaN if one never did).
fn worst(r: &Value, with_download: bool) -> f64 {
    STREAM_KEYS
        .iter()
        .filter(|k| with_download || **k != "tcp_download_s")
        .map(|k| f(&r[*k]))
        .fold(0.0, |w, x| if x.is_nan() { f64::NAN } else { w.max(x) })
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(s: f64) -> String {
    if s.is_finite() {
        format!("{:.0}", s * 1e3)
    } else {
        "–".into()
    }
}

fn sync_words(fo: &Value) -> &'static str {
    if fo["sync"] == true {
        "binding sync on"
    } else {
        "no binding sync (`--no-sync`: stateless takeover, no TCP download)"
    }
}

/// The target row: every run clean, and the median over the runs of the
/// slowest stream's interruption under a second.
pub(super) fn target(fo: Option<&Value>) -> Target {
    let what = format!("{WHAT} {}", TARGET.inline());
    let Some(fo) = fo else {
        return Target {
            what,
            measured: "not run".into(),
            pass: None,
        };
    };
    let rs = runs(fo);
    let dl = fo["with_download"] == true;
    let worsts: Vec<f64> = rs.iter().map(|r| worst(r, dl)).collect();
    let m = median(worsts.iter().copied().filter(|w| w.is_finite()).collect());
    let (lo, hi) = worsts
        .iter()
        .filter(|w| w.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), w| (lo.min(*w), hi.max(*w)));
    let resets = rs.iter().filter(|r| r["no_reset"] != true).count();
    let kept = rs.iter().filter(|r| r["kept_endpoints"] == true).count();
    let n_clean = rs.iter().filter(|r| clean(r)).count();
    let pass = (!rs.is_empty()).then_some(n_clean == rs.len() && m < 1.0);
    Target {
        what,
        measured: format!(
            "{} failovers, {}: TCP reset in {resets} run(s); one public endpoint per stream in \
             {kept}/{}; the slowest stream back after {} ms (median; {}–{} ms); UDP datagrams \
             through the standby after {} ms (median){}",
            rs.len(),
            sync_words(fo),
            rs.len(),
            ms(m),
            ms(lo),
            ms(hi),
            ms(f(&fo["summary"]["udp_at_server_s"]["median"])),
            if n_clean == rs.len() {
                String::new()
            } else {
                format!("; {} run(s) not clean (section 5)", rs.len() - n_clean)
            }
        ),
        pass,
    }
}

/// The section (its markers included); empty when the failover did not
/// run.
pub(super) fn section(out: &mut String, fo: Option<&Value>) {
    let Some(fo) = fo else {
        let _ = write!(out, "{}\n\n{}\n", SECTION.begin(), SECTION.end());
        return;
    };
    let mut body = String::new();
    let run = &fo["run"];
    let t = &fo["timers"];
    let dl = fo["with_download"] == true;
    let _ = writeln!(
        body,
        "## 5. Failover (active/standby pair and N+1, issue 18)\n\n\
         Measured by `{}` on {} ({:.0} s; load average before / after: {} / {}), {}. Two xnat \
         gateways with the same deterministic configuration; keepalived (VRRPv3, advertisement \
         every {} s, `xnat status --check` as its track script) owns the inside virtual gateway \
         address, and BIRD announces the pool to the router over BGP ({}) with BFD ({}) from the \
         master only. A TCP upload{} and a UDP stream (a datagram every 10 ms, echoed by the \
         server) run from the inside host through gw1; then gw1 dies: its links go down and its \
         agent, BIRD and keepalived are SIGKILLed. Each run on a fresh pair; ms from the \
         failure (see Method):\n",
        run["command"].as_str().unwrap_or("cargo xtask bench"),
        run["date"].as_str().unwrap_or("?"),
        f(&run["secs"]),
        run["load_before"].as_str().unwrap_or("?"),
        run["load_after"].as_str().unwrap_or("?"),
        sync_words(fo),
        f(&t["vrrp_advert_s"]),
        t["bgp"].as_str().unwrap_or("?"),
        t["bfd"].as_str().unwrap_or("?"),
        if dl {
            ", a TCP download (~1 MB/s each)"
        } else {
            " (~1 MB/s)"
        },
    );
    let rs = runs(fo);
    let heads: Vec<String> = (1..=rs.len()).map(|i| format!("run {i}")).collect();
    let _ = writeln!(
        body,
        "| | {} | median | min | max |\n|---|{}---:|---:|---:|",
        heads.join(" | "),
        "---:|".repeat(rs.len())
    );
    for (key, label) in ROWS {
        if key == "tcp_download_s" && !dl {
            continue;
        }
        let cells: Vec<String> = rs.iter().map(|r| ms(f(&r[key]))).collect();
        let s = &fo["summary"][key];
        let _ = writeln!(
            body,
            "| {label} | {} | {} | {} | {} |",
            cells.join(" | "),
            ms(f(&s["median"])),
            ms(f(&s["min"])),
            ms(f(&s["max"]))
        );
    }
    let yes_no = |r: &Value, k: &str, yes: &str, no: &str| -> String {
        if r.get("error").is_some() {
            "–".into()
        } else if r[k] == true {
            yes.into()
        } else {
            format!("**{no}**")
        }
    };
    let cells: Vec<String> = rs
        .iter()
        .map(|r| yes_no(r, "kept_endpoints", "yes", "no"))
        .collect();
    let _ = writeln!(
        body,
        "| one public endpoint per stream (the server's view) | {} | | | |",
        cells.join(" | ")
    );
    let cells: Vec<String> = rs
        .iter()
        .map(|r| yes_no(r, "no_reset", "0", "reset"))
        .collect();
    let _ = writeln!(
        body,
        "| TCP connections reset | {} | | | |",
        cells.join(" | ")
    );
    // VRRPv3's master-down interval: 3 adverts plus the skew, (256 -
    // priority) / 256 adverts; the standby's priority is 100.
    let advert = f(&t["vrrp_advert_s"]);
    let down = 3.0 * advert + (256.0 - 100.0) / 256.0 * advert;
    let _ = writeln!(
        body,
        "\nWhat bounds the interruption: the standby becomes master ≈ 3 × the VRRP advertisement \
         interval plus its skew after the active gateway's last advertisement ({down:.2} s with \
         these timers), and the outbound streams resume then; the router's route leaves the \
         dead gateway within BFD's detection time (300 ms; here at once, as the link goes down \
         and BIRD checks it) and points at the standby as soon as that, master, announces the \
         pool. TCP resumes later than UDP by its retransmission timer: a segment lost in the \
         gap is sent again after the RTO, which doubles each time (200 ms, then 400 ms)."
    );
    n_plus_1(&mut body, &fo["n_plus_1"]);
    let mut notes = Vec::new();
    for (i, r) in rs.iter().enumerate() {
        if let Some(e) = r["error"].as_str() {
            notes.push(format!("run {}: the run failed: {e}", i + 1));
        }
        for p in r["problems"].as_array().into_iter().flatten() {
            notes.push(format!("run {}: {}", i + 1, p.as_str().unwrap_or("?")));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(body);
        for n in notes {
            let _ = writeln!(body, "- {n}");
        }
    }
    out.push_str(&SECTION.block(&body));
}

/// The N+1 failovers' table (xnat-ha bench runs them with binding sync):
/// the failed slice's resumption, the surviving slice's continuity.
fn n_plus_1(body: &mut String, n: &Value) {
    let Some(rows) = n["per_run"].as_array().filter(|r| !r.is_empty()) else {
        return;
    };
    let heads: Vec<String> = (1..=rows.len()).map(|i| format!("run {i}")).collect();
    let _ = writeln!(
        body,
        "\n**N+1** (tests/src/ha_topo.rs `Plan::n_plus_1`): three gateways, gw1 and gw2 each master \
         of its slice of the layout (its inside hosts, its pool addresses, its own VRRP instance \
         and BIRD static), gw3 the backup of both, bindings synced among all three; a host of \
         each slice runs the same streams; gw1 dies as above. ms from the failure, and the \
         surviving slice's datagrams lost (of one every 10 ms):\n\n\
         | | {} | median | min | max |\n|---|{}---:|---:|---:|",
        heads.join(" | "),
        "---:|".repeat(rows.len())
    );
    let rows_of = [
        (
            "failed_udp_s",
            "failed slice: first UDP datagram at the server",
            true,
        ),
        (
            "failed_upload_s",
            "failed slice: TCP upload moving again",
            true,
        ),
        (
            "failed_download_s",
            "failed slice: TCP download moving again",
            true,
        ),
        (
            "surviving_silence_s",
            "surviving slice: longest UDP silence",
            true,
        ),
        (
            "surviving_lost",
            "surviving slice: UDP datagrams lost",
            false,
        ),
    ];
    for (key, label, secs) in rows_of {
        let cell = |v: &Value| {
            if v.is_null() {
                "–".to_string()
            } else if secs {
                ms(f(v))
            } else {
                format!("{:.0}", f(v))
            }
        };
        let cells: Vec<String> = rows.iter().map(|r| cell(&r[key])).collect();
        let s = &n["summary"][key];
        let _ = writeln!(
            body,
            "| {label} | {} | {} | {} | {} |",
            cells.join(" | "),
            cell(&s["median"]),
            cell(&s["min"]),
            cell(&s["max"])
        );
    }
    for (i, r) in rows.iter().enumerate() {
        if let Some(e) = r["error"].as_str() {
            let _ = writeln!(body, "\n- N+1 run {}: the run failed: {e}", i + 1);
        }
        for p in r["problems"].as_array().into_iter().flatten() {
            let _ = writeln!(body, "\n- N+1 run {}: {}", i + 1, p.as_str().unwrap_or("?"));
        }
    }
}

/// The Method's paragraph on the failover.
pub(super) fn method(out: &mut String) {
    out.push_str(&METHOD.block(METHOD_TEXT));
}

const METHOD_TEXT: &str = "\
**Failover.** `xnat-ha bench` (tests/src/bin/xnat-ha.rs; the pair is tests/src/ha_topo.rs, the \
streams tests/src/failover.rs, as in the end-to-end test e2e_failover, and the steps \
tests/src/ha_scene.rs; `cargo xtask demo --ha` narrates one such failover) builds, for each \
run, an inside host, a LAN bridge, two gateways, a router and a server in network namespaces. \
Both gateways run `xnat attach --allocation deterministic` with the same pool (203.0.113.0/28, \
no gateway's own address: each has a blackhole route for it, which its BIRD exports), with \
binding sync between them unless `--no-sync`; keepalived's notify script enables BIRD's `pool` \
protocol on MASTER and disables it otherwise. The inside host's TCP upload (and, with binding \
sync, a TCP download: after the failover the server's segments reach the standby first, which \
only a synced mapping lets through) write 8 KiB every 8 ms; its UDP socket sends a datagram \
every 10 ms, which the server echoes; every datagram is stamped where it arrives, while the \
TCP streams' progress is the receiving side's byte count, polled every 10 ms. A stream's \
interruption ends with its first move after its longest pause from the failure on: what was in \
flight through gw1 still arrives in the first milliseconds, before anything can pass through \
gw2, and does not count. The failure is timed as gw1's links are down (its processes are killed right after); keepalived's notify \
log gives the moment gw2 turned master (wall clock, the same machine), and `ip monitor route` on \
the router the moments its route for the pool changed (polled with the streams). After the \
streams resume and run on a moment, they end with FINs: every byte sent must have arrived, no \
connection may have met an error (a reset), the server must have seen one source per stream, \
gw1's public endpoint, and gw2 must carry gw1's mappings; a run where any of that fails is \
listed under the table. `--quick` runs 2 failovers instead of 5. `--only failover` rewrites \
only the failover's parts of the existing BENCHMARKS.md — its row in the Targets table, section \
5 and this paragraph, between `<!-- bench:failover… -->` comments — and the other runs keep its \
row and section from the existing file, as for the flood.";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(worst_s: f64, clean: bool) -> Value {
        json!({"udp_at_server_s": 0.3, "udp_echo_s": 0.31, "tcp_upload_s": worst_s,
               "tcp_download_s": worst_s, "kept_endpoints": clean, "no_reset": clean,
               "problems": if clean { json!([]) } else { json!(["a reset"]) }})
    }

    fn failover(runs: Vec<Value>) -> Value {
        json!({"sync": true, "with_download": true, "per_run": runs,
               "summary": {"udp_at_server_s": {"median": 0.3}}})
    }

    #[test]
    fn the_target_needs_clean_runs_and_a_median_under_a_second() {
        let ok = failover(vec![run(0.6, true), run(0.7, true), run(1.5, true)]);
        assert_eq!(target(Some(&ok)).pass, Some(true));
        let slow = failover(vec![run(1.2, true), run(1.3, true), run(0.5, true)]);
        assert_eq!(target(Some(&slow)).pass, Some(false));
        let reset = failover(vec![run(0.6, true), run(0.6, false)]);
        assert_eq!(target(Some(&reset)).pass, Some(false));
        let broken = failover(vec![json!({"error": "boom"})]);
        assert_eq!(target(Some(&broken)).pass, Some(false));
        assert_eq!(target(None).pass, None);
    }

    #[test]
    fn a_stream_that_never_resumed_is_the_worst() {
        let mut r = run(0.6, true);
        r["tcp_download_s"] = Value::Null;
        assert!(worst(&r, true).is_nan());
        assert_eq!(worst(&r, false), 0.6);
    }

    #[test]
    fn the_row_and_section_carry_their_markers() {
        assert!(target(None).what.contains(&TARGET.inline()));
        let mut out = String::new();
        section(&mut out, Some(&failover(vec![run(0.6, true)])));
        assert!(out.starts_with(&SECTION.begin()));
        assert!(out.contains("## 5. Failover (active/standby pair"));
        assert!(out.trim_end().ends_with(&SECTION.end()));
    }
}
