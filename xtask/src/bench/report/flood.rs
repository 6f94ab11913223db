//! The inbound-flood parts of BENCHMARKS.md (issue 14): its row in the
//! Targets table, its section and its paragraph of the Method, each a
//! marked part (`super::super::splice`) that `--only flood` can replace in
//! the existing file.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Target, count, f, pct};
use crate::bench::splice::{Anchor, Part};

/// The flood's row in the Targets table.
pub const TARGET: Part = Part {
    name: "flood-target",
    anchor: Anchor::TableEnd("## Targets"),
};
/// The flood's section, before the Method.
pub const SECTION: Part = Part {
    name: "flood",
    anchor: Anchor::Before("## Method"),
};
/// The flood's paragraphs of the Method.
pub const METHOD: Part = Part {
    name: "flood-method",
    anchor: Anchor::SectionEnd("## Method"),
};
/// Every part a flood run writes.
pub const PARTS: [Part; 3] = [TARGET, SECTION, METHOD];
/// The parts with figures (a run without the flood keeps them from the
/// existing file; the Method paragraph it writes itself).
pub const FIGURE_PARTS: [Part; 2] = [TARGET, SECTION];

const WHAT: &str =
    "inside hosts keep opening flows during an outside SYN flood: 100 % success (issue 14)";

fn cases(flood: &Value) -> Vec<&Value> {
    flood["cases"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn mode_name(c: &Value) -> String {
    c["ingress"].as_str().unwrap_or("?").to_uppercase()
}

fn capped(c: &Value) -> bool {
    c["cap"].as_bool() == Some(true)
}

/// `400/400 (100 %)`, or what went wrong.
fn flows_ok(c: &Value) -> String {
    if c.get("error").is_some() {
        return "no figure (the run failed, see below)".into();
    }
    format!(
        "{}/{} ({})",
        count(f(&c["flows_ok"])),
        count(f(&c["flows_total"])),
        pct(f(&c["flows_ok_pct"]))
    )
}

/// The target row: judged on the capped runs (every inside flow must get
/// through); the runs without a cap show what the cap changes.
pub(super) fn target(flood: Option<&Value>) -> Target {
    let what = format!("{WHAT} {}", TARGET.inline());
    let Some(fl) = flood else {
        return Target {
            what,
            measured: "not run".into(),
            pass: None,
        };
    };
    let list = |cap: bool| -> String {
        cases(fl)
            .into_iter()
            .filter(|c| capped(c) == cap)
            .map(|c| format!("{} {}", mode_name(c), flows_ok(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rates: Vec<f64> = cases(fl)
        .iter()
        .map(|c| f(&c["syns_per_s"]))
        .filter(|r| r.is_finite())
        .collect();
    let (lo, hi) = rates
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    let with_cap: Vec<&Value> = cases(fl).into_iter().filter(|c| capped(c)).collect();
    let pass = (!with_cap.is_empty()).then(|| {
        with_cap.iter().all(|c| {
            c.get("error").is_none()
                && c["flows_total"].as_u64().unwrap_or(0) > 0
                && c["flows_ok"] == c["flows_total"]
        })
    });
    Target {
        what,
        measured: format!(
            "`--max-sessions {}`, {} spoofed SYNs/s to a port forward; inside flows ok with the \
             default cap ({} inbound sessions): {}; without a cap (`--max-inbound-sessions 0`): {}",
            fl["max_sessions"],
            if rates.is_empty() {
                "–".to_string()
            } else {
                format!("{:.0}–{:.0} k", lo / 1e3, hi / 1e3)
            },
            fl["default_cap"],
            list(true),
            list(false)
        ),
        pass,
    }
}

fn kilo(v: f64) -> String {
    if v.is_finite() {
        format!("{:.0} k", v / 1e3)
    } else {
        "–".into()
    }
}

/// A count with thousands separated, e.g. `481,551`.
fn exact(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let digits = format!("{v:.0}");
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn ms(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "–".into()
    }
}

/// The section (its markers included); empty when the flood did not run.
pub(super) fn section(out: &mut String, flood: Option<&Value>) {
    let Some(fl) = flood else {
        let _ = write!(out, "{}\n\n{}\n", SECTION.begin(), SECTION.end());
        return;
    };
    let mut body = String::new();
    let run = &fl["run"];
    let _ = writeln!(
        body,
        "## 4. Inbound SYN flood (issue 14)\n\n\
         Measured by `{}` on {} ({:.0} s; load average before / after: {} / {}). xnat with \
         `--max-sessions {}` and a port forward {}; a thread in the server namespace sends SYNs \
         from spoofed random sources to the forward as fast as it can, and once xnat refuses \
         them, three inside hosts open a new flow every {} ms ({} flows; each a new session, up \
         to {} tries {} ms apart) while the flood goes on. Each case once, in a topology of its \
         own, with the default cap ({} sessions from outside, half the table) and without one \
         (`--max-inbound-sessions 0`); see Method.\n",
        run["command"].as_str().unwrap_or("cargo xtask bench"),
        run["date"].as_str().unwrap_or("?"),
        f(&run["secs"]),
        run["load_before"].as_str().unwrap_or("?"),
        run["load_after"].as_str().unwrap_or("?"),
        fl["max_sessions"],
        fl["forward"].as_str().unwrap_or("?"),
        fl["flow_every_ms"],
        fl["flows"],
        fl["flow_tries"],
        fl["flow_try_timeout_ms"],
        fl["default_cap"],
    );
    let cs = cases(fl);
    let heads: Vec<String> = cs
        .iter()
        .map(|c| {
            if capped(c) {
                format!(
                    "{} ingress, default cap ({})",
                    mode_name(c),
                    c["max_inbound_sessions"]
                )
            } else {
                format!("{} ingress, no cap", mode_name(c))
            }
        })
        .collect();
    let _ = writeln!(
        body,
        "| | {} |\n|---|{}",
        heads.join(" | "),
        "---:|".repeat(cs.len())
    );
    type Cell = fn(&Value) -> String;
    let rows: [(&str, Cell); 10] = [
        ("inside flows ok", flows_ok),
        ("… at the first try", |c| {
            count(f(&c["flows_ok_first_try"]))
        }),
        ("… round trip, median / max, ms", |c| {
            format!(
                "{} / {}",
                ms(f(&c["flow_rtt_ms_median"])),
                ms(f(&c["flow_rtt_ms_max"]))
            )
        }),
        ("spoofed SYNs sent", |c| exact(f(&c["syns_sent"]))),
        ("… per second (one sending thread)", |c| {
            kilo(f(&c["syns_per_s"]))
        }),
        ("… while the inside flows ran", |c| {
            kilo(f(&c["syns_at_flows_end"]) - f(&c["syns_at_flows_start"]))
        }),
        ("sessions created (the flood's and the inside's)", |c| {
            count(f(&c["sessions_created"]))
        }),
        (
            "SYNs refused: inbound session limit (`drop_inbound_session_limit`)",
            |c| exact(f(&c["refused_inbound_limit"])),
        ),
        (
            "new sessions refused: table full (`drop_session_table_full`; the inside's tries \
             too)",
            |c| exact(f(&c["refused_table_full"])),
        ),
        (
            "live sessions at the end: TCP (the flood's) / UDP (the inside's)",
            |c| {
                format!(
                    "{} / {}",
                    count(f(&c["live_tcp"])),
                    count(f(&c["live_udp"]))
                )
            },
        ),
    ];
    for (label, cell) in rows {
        let cells: Vec<String> = cs.iter().map(|c| cell(c)).collect();
        let _ = writeln!(body, "| {label} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        body,
        "\nWithout the cap the flood's sessions fill the whole table within moments, and every \
         new session after that is refused as the table is full, the inside's as much as the \
         flood's; with it the flood holds at most the cap, its further SYNs are refused as over \
         the inbound limit, and the rest of the table stays for the sessions the inside opens."
    );
    let mut notes = Vec::new();
    for (c, head) in cs.iter().zip(&heads) {
        if let Some(e) = c["error"].as_str() {
            notes.push(format!("{head}: the run failed: {e}"));
        }
        if capped(c) {
            for fail in c["flow_failures"].as_array().into_iter().flatten() {
                notes.push(format!("{head}: {}", fail.as_str().unwrap_or("?")));
            }
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

/// The Method's paragraphs on the flood and on runs of one part.
pub(super) fn method(out: &mut String) {
    out.push_str(&METHOD.block(METHOD_TEXT));
}

const METHOD_TEXT: &str = "\
**Inbound SYN flood.** `xnat-flood` (tests/src/bin/; the scenario is tests/src/flood/, which the \
end-to-end test `inbound_flood_does_not_starve_inside` runs too, with a paced flood of 2,000 \
SYNs and `--max-sessions 64`) builds the NAPT test topology (inside hosts on a bridge — the \
gateway, xnat on its external veth, pool 198.51.100.1 — a router — servers, in network \
namespaces) afresh for each case, in TC and in XDP ingress mode. xnat runs with \
`--max-sessions 1024` and a port forward 198.51.100.1:8080 → 10.0.0.5:80, once with the default \
`--max-inbound-sessions` (half the table) and once with `--max-inbound-sessions 0` (no cap). \
The forward has no listener: the inside host answers every SYN that gets through with a reset, \
which the router drops on its way to the spoofed source (a blackhole route; the router has no \
reverse-path filter, so the SYNs from sources it cannot reach pass). One thread in the server \
namespace sends the SYNs from a raw socket, each from a random source in 100.64.0.0/10 and a \
random port, as fast as it can, until the inside flows are done. Once xnat refuses its first \
SYN (the inbound share of the table is full, or with no cap the whole table), a second thread \
opens the inside flows, one every 10 ms on a fixed schedule whatever became of the earlier ones, \
for 4 s (400 flows; 2 s with `--quick`): each is one UDP datagram from one of three inside sockets (10.0.0.2, .3 and .4) to a \
server endpoint that socket has not talked to before, which the server echoes; the flow \
succeeds when the echo comes back from that endpoint, within 3 tries 500 ms apart. Each inside \
socket got its mapping before the flood, so every flow is a new *session* beyond its mapping's \
first — what a DNS resolver's, a game's or a QUIC client's one socket opens to each new server, \
and the kind of flow the flood competes with for the session table: a flow from a new socket \
makes a new mapping, which holds its first session itself and needs no slot in the table. The \
table is sized so that a run's inside sessions all fit in the half the cap leaves them (UDP \
sessions live for minutes, past the run): a capped run can fail only because of the flood. \
The figures are xnat's counters (`xnat stats --json`) over the run; the target needs \
every flow of the capped runs to succeed.\n\n\
**Runs of one part.** `--only e2e` writes the whole file as a full run does, with the parts it \
did not measure marked *not run*, but keeps the figures of the parts that run on their own — the \
BPF_PROG_TEST_RUN part's, the flood's, the failover's, NAT64's: their rows in the Targets table \
and their sections — from the existing file. `--only micro` rewrites only the \
BPF_PROG_TEST_RUN parts of the existing BENCHMARKS.md (their rows in the Targets table, sections \
1 and 2 and their paragraphs of the Method, between `<!-- bench:micro… -->` comments), and \
`--only flood` only the flood's — its row in the Targets table, section 4 and these two \
paragraphs, each between HTML comments (`<!-- bench:flood… -->`, invisible when rendered); each \
leaves the rest as the last run wrote it, and its section says when it was measured.";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn exact_counts_have_thousands_separated() {
        assert_eq!(exact(0.0), "0");
        assert_eq!(exact(712.0), "712");
        assert_eq!(exact(1000.0), "1,000");
        assert_eq!(exact(481551.0), "481,551");
        assert_eq!(exact(f64::NAN), "–");
    }

    fn run(capped_ok: u64) -> Value {
        let case = |ingress: &str, cap: bool, ok: u64| {
            json!({"ingress": ingress, "cap": cap, "flows_ok": ok, "flows_total": 400,
                   "flows_ok_pct": ok as f64 / 4.0, "syns_per_s": 2e5})
        };
        json!({"max_sessions": 1024, "default_cap": 512, "cases": [
            case("tc", true, 400), case("tc", false, 0),
            case("xdp", true, capped_ok), case("xdp", false, 0),
        ]})
    }

    #[test]
    fn the_target_needs_every_capped_flow() {
        assert_eq!(target(Some(&run(400))).pass, Some(true));
        assert_eq!(target(Some(&run(399))).pass, Some(false));
        assert_eq!(target(None).pass, None);
        let failed = json!({"max_sessions": 1024, "default_cap": 512, "cases": [
            {"ingress": "tc", "cap": true, "error": "boom"}]});
        assert_eq!(target(Some(&failed)).pass, Some(false));
    }

    #[test]
    fn the_row_carries_its_marker() {
        assert!(target(None).what.contains(&TARGET.inline()));
    }
}
