//! `xnat-ha`: an active/standby pair of xnat gateways (keepalived VRRPv3,
//! BIRD BGP with BFD; tests/src/ha_topo.rs) whose active gateway dies while
//! a TCP upload, a TCP download and a UDP stream run through it
//! (tests/src/ha_scene.rs).
//!
//! - `xnat-ha demo [--no-sync]`: the narrated scene of `cargo xtask demo
//!   --ha`; exit 1 if the failover was not clean.
//! - `xnat-ha bench --runs N [--no-sync] [--json]`: N failovers, each on a
//!   fresh pair; the figures per run and their median / min / max (JSON for
//!   `cargo xtask bench --only failover`); exit 1 if any run was not clean.
//!
//! With binding sync (the default) the agents run with `--sync-listen` /
//! `--sync-peer` and the TCP download runs too; `--no-sync` leaves the
//! takeover to deterministic allocation alone (stateless), which carries
//! the upload and the UDP stream but not a download. Progress goes to
//! stderr. Set XNAT_BIN to the xnat under test, else the `xnat` next to
//! this binary runs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use xnat_tests::failover;
use xnat_tests::ha_scene::{Ending, Failover, Figures, Scene, Steady};
use xnat_tests::ha_topo::{CLIENT, HaOptions, POOL, SERVER};

/// An active/standby pair of xnat gateways whose active one dies while
/// TCP and UDP streams run through it: a narrated demo, or a benchmark.
#[derive(Parser)]
#[command(name = "xnat-ha", args_override_self = true)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The narrated scene (`cargo xtask demo --ha`): the pair, the streams,
    /// gw1 killed, the takeover, what the server saw. Exit 1 if the failover
    /// was not clean.
    Demo {
        /// No binding sync between the gateways: deterministic allocation
        /// alone recreates the mappings (no TCP download then).
        #[arg(long)]
        no_sync: bool,
    },
    /// N failovers on fresh pairs, timed (`cargo xtask bench --only
    /// failover`). Exit 1 if any run was not clean.
    Bench {
        /// How many failovers (1-99).
        #[arg(long, value_name = "N", default_value = "5", value_parser = clap::value_parser!(u32).range(1..=99))]
        runs: u32,
        /// No binding sync between the gateways (no TCP download then).
        #[arg(long)]
        no_sync: bool,
        /// Print the figures as JSON on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The timers of the pair (tests/src/ha_topo.rs writes them into the
/// daemons' configurations); VRRP's advertisement interval is the
/// `HaOptions` default.
const BFD: &str = "100 ms × 3";
const BGP: &str = "hold 3 s, keepalive 1 s";

const TOPOLOGY: &str = "
     cli              gw1: VRRP master (priority 150)      rtr: BGP AS 65000        srv
   +--------------+   +--------------------------------+   +--------------------+   +-------------+
   | 10.77.0.10   |   | in0 10.77.0.2 + VIP 10.77.0.1  |   | gw1 198.51.100.1   |   | 198.18.0.10 |
   | default via  |-+-| ext 198.51.100.0: xnat         |---|                    |---|             |
   |   10.77.0.1  | | | BIRD AS 65001: pool announced  |   | srv0 198.18.0.1    |   +-------------+
   +--------------+ | +--------------------------------+   |                    |
                    | +--------------------------------+   | 203.0.113.0/28 via |
     the LAN: one   +-| in0 10.77.0.3                  |   |   the gateway that |
     bridge         | | ext 198.51.100.2: xnat         |---|   announces it     |
                      | BIRD AS 65001: nothing         |   | gw2 198.51.100.3   |
                      +--------------------------------+   +--------------------+
                      gw2: VRRP backup (priority 100)
   Each gateway has BGP with BFD to the router; the pool 203.0.113.0/28 is no gateway's
   address: the router routes it to whichever gateway announces it.";

fn header(title: &str, explain: &[&str]) {
    println!("\n==> {title}");
    for line in explain {
        println!("    {line}");
    }
}

fn show(who: &str, text: &str) {
    println!("    [{who}]");
    let mut any = false;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        println!("      {line}");
        any = true;
    }
    if !any {
        println!("      (nothing)");
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("never".into(), |d| {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    })
}

/// A panic's message.
fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

fn options(no_sync: bool) -> HaOptions {
    HaOptions {
        sync: !no_sync,
        ..HaOptions::default()
    }
}

fn demo(no_sync: bool) -> Result<(), Vec<String>> {
    let opts = options(no_sync);
    let with_download = opts.sync;
    header(
        "An active/standby pair of xnat gateways in network namespaces",
        &[
            "Both gateways run `xnat attach` with the same deterministic configuration, so each",
            "computes the same public endpoint for every inside endpoint; keepalived (VRRPv3) gives",
            "the inside the virtual gateway address 10.77.0.1, and BIRD announces the pool to the",
            "router over BGP (with BFD) from the master only: its notify script enables BIRD's",
            "`pool` protocol on MASTER and disables it otherwise; its track script is",
            "`xnat status --check`.",
        ],
    );
    println!("{TOPOLOGY}");
    println!(
        "\n    Timers: VRRP advertisement {} s (the backup takes over after 3 missed adverts plus",
        opts.advert
    );
    println!("    its skew), BFD {BFD} (the router drops a dead gateway's route),");
    println!("    BGP {BGP}.");
    if opts.sync {
        println!(
            "    Binding sync: each agent sends the bindings it makes to the other (`--sync-listen`"
        );
        println!(
            "    10.77.0.x:4790 `--sync-peer` the other's), so the standby knows every mapping."
        );
    } else {
        println!(
            "    No binding sync (--no-sync): the standby recreates each mapping from the inside"
        );
        println!(
            "    host's next packet, the same by construction (deterministic allocation); a TCP"
        );
        println!(
            "    download, whose next segment comes from outside, would not survive: not run."
        );
    }

    header(
        "Starting both agents, BIRD on the router and the gateways, keepalived on gw1, then gw2",
        &[&format!(
            "xnat attach EXT --inside in0 --allocation deterministic --internal 10.77.0.0/24 \
             --pool 203.0.113.0-203.0.113.15 --ports 1024-65535{}",
            if opts.sync {
                " --sync-listen 10.77.0.x:4790 --sync-peer 10.77.0.y:4790"
            } else {
                ""
            }
        )],
    );
    let started = Instant::now();
    let mut scene = Scene::start("demo", opts, with_download);
    println!(
        "    up in {:.1} s: BGP sessions established, gw1 master, the pool routed via gw1",
        started.elapsed().as_secs_f64()
    );
    let mut problems = Vec::new();
    {
        let t = &scene.topo;
        for (i, g) in t.gw.iter().enumerate() {
            show(&format!("gw{}: xnat status", i + 1), &g.xnat(&["status"]));
        }
        let vrrp: String = (0..2)
            .map(|i| {
                let states: Vec<String> = t.notified(i).into_iter().map(|(_, s)| s).collect();
                format!(
                    "gw{}: {} (notify log: {})\n",
                    i + 1,
                    if t.gw[i].has(t.vip()) {
                        "MASTER, owns the VIP 10.77.0.1"
                    } else {
                        "BACKUP"
                    },
                    states.join(", "),
                )
            })
            .collect();
        show("VRRP", &vrrp);
        let route = t.pool_route();
        show(&format!("rtr: ip route show {POOL}"), &route);
        if !t.gw[0].has(t.vip()) || t.gw[1].has(t.vip()) {
            problems.push("gw1 is not the only owner of the VIP".to_string());
        }
        if !route.contains("dev gw1") {
            problems.push(format!(
                "the router does not route the pool via gw1: {route}"
            ));
        }
    }

    header(
        "Streams from the client through gw1 to the server",
        &[
            &format!("{CLIENT} -> {SERVER}: a TCP upload (port 5001, ~1 MB/s),"),
            if with_download {
                "a TCP download (port 5002, the server writes ~1 MB/s), and a UDP datagram every"
            } else {
                "and a UDP datagram every"
            },
            "10 ms (port 5000) that the server echoes, each stamped with the moment it arrived.",
            "The client's ports are outside its deterministic range, so its mappings take",
            "public ports of the layout's fixed sequence.",
        ],
    );
    let steady = scene.stream();
    {
        let t = &scene.topo;
        let g1 = &t.gw[0];
        show("gw1: xnat flows", &g1.xnat(&["flows", "-i", &g1.ext]));
        if opts.sync {
            let g2 = &t.gw[1];
            show(
                "gw2: xnat flows (the mappings it learned from gw1: [peer])",
                &g2.xnat(&["flows", "-i", &g2.ext]),
            );
        }
    }

    header(
        "gw1 dies: links down, agent, BIRD and keepalived SIGKILLed",
        &[
            "Nothing runs its shutdown: no VRRP priority 0, no BGP notification, no detach.",
            "gw2's keepalived notices the missing adverts, the router's BFD the silent link.",
        ],
    );
    let f = scene.fail_gw1();
    let vip_moved = scene.topo.gw[1].has(scene.topo.vip());
    let end = scene.finish();
    let fig = Figures::new(&scene, &steady, &f, &end);
    timeline(&fig, &f, &end);

    header(
        "gw2 carries the streams now, on the same public endpoints",
        &[],
    );
    show("gw2: xnat flows", &end.gw2_flows_text);
    show(
        "VRRP",
        &format!(
            "gw2: {}",
            if vip_moved {
                "MASTER, owns the VIP 10.77.0.1"
            } else {
                "does not own the VIP"
            }
        ),
    );
    show(
        &format!("rtr: ip route show {POOL}"),
        &scene.topo.pool_route(),
    );

    header(
        "What the server saw",
        &["One public endpoint per stream throughout, every byte, no reset."],
    );
    server_saw(&fig, &end);
    problems.extend(fig.problems.iter().cloned());
    if !vip_moved {
        problems.push("gw2 does not own the VIP after the failover".into());
    }
    if problems.is_empty() {
        println!(
            "\nDemo complete: gw1 died; gw2 took over the VIP and the pool, and every stream went \
             on through it from the same public endpoint ({}), none reset.",
            fig.udp_sources
                .first()
                .map_or("?".into(), |a| a.ip().to_string())
        );
        Ok(())
    } else {
        Err(problems)
    }
}

/// What happened after the failure, in order.
fn timeline(fig: &Figures, f: &Failover, end: &Ending) {
    let mut events: Vec<(Option<Duration>, String)> = vec![
        (
            f.route_withdrawn,
            "rtr: the route for the pool via gw1 is gone (BFD / link down: BGP session down)"
                .into(),
        ),
        (
            fig.gw2_master,
            "gw2: keepalived MASTER (notify script: owns the VIP, `birdc enable pool`)".into(),
        ),
        (
            f.route_moved,
            "rtr: the pool routed via gw2 (gw2's announcement)".into(),
        ),
        (
            fig.udp_at_server,
            "srv: first UDP datagram through gw2".into(),
        ),
        (fig.udp_echo, "cli: first UDP echo back through gw2".into()),
        (fig.upload, "TCP upload moving again".into()),
    ];
    if fig.with_download {
        events.push((fig.download, "TCP download moving again".into()));
    }
    events.sort_by_key(|(d, _)| d.unwrap_or(Duration::MAX));
    let mut text = String::new();
    for (d, what) in &events {
        text += &format!("+{:>8}  {what}\n", ms(*d));
    }
    show("after the failure (t0: gw1's links down)", &text);
    let log: String = f
        .route_log
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    show("rtr: ip monitor route (after the failure)", &log);
    let notified: String = end
        .gw2_notified
        .iter()
        .map(|(at, s)| format!("{:+.3} s  {s}\n", at - f.t0_unix))
        .collect();
    show("gw2: keepalived notify log (relative to t0)", &notified);
    let mut intr = String::new();
    let mut line = |name: &str, d: Option<Duration>, how: &str| {
        intr += &format!("{name:<13} interrupted for {:>8}  ({how})\n", ms(d));
    };
    line(
        "TCP upload",
        f.resumed[0],
        "the server's byte count, polled every 10 ms",
    );
    if fig.with_download {
        line(
            "TCP download",
            f.resumed[1],
            "the client's byte count, polled every 10 ms",
        );
    }
    line(
        "UDP out",
        fig.udp_at_server,
        "each datagram timed at the server",
    );
    line("UDP back", fig.udp_echo, "each echo timed at the client");
    show(
        "interruption per stream (to its first move after its longest pause: what was in \
         flight through gw1 may still arrive first)",
        &intr,
    );
}

fn server_saw(fig: &Figures, end: &Ending) {
    let s = &end.seen;
    let mut text = String::new();
    let count = |a: &std::net::SocketAddr| s.udp.at_server.iter().filter(|x| x.2 == *a).count();
    text += &format!(
        "UDP: {} datagram(s) from {} source(s): {}\n",
        s.udp.at_server.len(),
        fig.udp_sources.len(),
        fig.udp_sources
            .iter()
            .map(|a| format!("{a} ({} datagrams)", count(a)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let tcp = |name: &str, r: &xnat_tests::failover::TcpResult| {
        format!(
            "{name}: peer {}, {} bytes sent, {} received, {}\n",
            r.server_saw.map_or("none".into(), |a| a.to_string()),
            r.sent,
            r.received,
            r.error
                .as_ref()
                .map_or("ended with FIN, no reset".into(), |e| format!("ERROR: {e}"))
        )
    };
    text += &tcp("TCP upload", &s.upload);
    if fig.with_download {
        text += &tcp("TCP download", &s.download);
    }
    show("srv", &text);
}

/// One failover for the benchmark: its figures, or what broke.
fn bench_run(tag: &str, opts: HaOptions) -> Result<Figures, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut scene = Scene::start(tag, opts, opts.sync);
        let steady: Steady = scene.stream();
        let f = scene.fail_gw1();
        let end = scene.finish();
        Figures::new(&scene, &steady, &f, &end)
    }))
    .map_err(|e| panic_message(&*e))
}

/// The metrics of the summary: (JSON key, label).
const METRICS: [(&str, &str); 7] = [
    ("udp_at_server_s", "first UDP datagram at the server"),
    ("udp_echo_s", "first UDP echo at the client"),
    ("tcp_upload_s", "TCP upload resumed"),
    ("tcp_download_s", "TCP download resumed"),
    ("gw2_master_s", "gw2 VRRP master"),
    ("route_withdrawn_s", "router: route via gw1 gone"),
    ("route_moved_s", "router: route via gw2"),
];

/// Median, min, max and count of each of `keys` over `rows` (runs that
/// lack a figure left out).
fn summarize(rows: &[Value], keys: &[&str]) -> serde_json::Map<String, Value> {
    let mut summary = serde_json::Map::new();
    for &key in keys {
        let mut v: Vec<f64> = rows.iter().filter_map(|r| r[key].as_f64()).collect();
        if v.is_empty() {
            continue;
        }
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        summary.insert(
            key.to_string(),
            json!({ "median": median(&mut v), "min": lo, "max": hi, "n": v.len() }),
        );
    }
    summary
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn bench(runs: u32, no_sync: bool, as_json: bool) -> bool {
    let opts = options(no_sync);
    let mut rows: Vec<Value> = Vec::new();
    for i in 0..runs {
        let tag = format!("hb{i:02}");
        eprintln!("xnat-ha: failover {}/{runs}", i + 1);
        let row = match bench_run(&tag, opts) {
            Ok(fig) => {
                eprintln!(
                    "xnat-ha: UDP at the server {}, echo {}, upload {}, download {}, gw2 master {}, route via gw2 {}{}",
                    ms(fig.udp_at_server),
                    ms(fig.udp_echo),
                    ms(fig.upload),
                    if fig.with_download {
                        ms(fig.download)
                    } else {
                        "not run".into()
                    },
                    ms(fig.gw2_master),
                    ms(fig.route_moved),
                    if fig.problems.is_empty() {
                        String::new()
                    } else {
                        format!("; PROBLEMS: {}", fig.problems.join("; "))
                    }
                );
                fig.to_json()
            }
            Err(e) => {
                eprintln!("xnat-ha: the run failed: {e}");
                json!({ "error": e })
            }
        };
        rows.push(row);
        // The namespaces and daemons of the run are gone; a moment for
        // the kernel to finish tearing them down.
        std::thread::sleep(Duration::from_millis(500));
    }
    // N+1 (binding sync is part of it): as many failovers.
    let n_plus_1 = (!no_sync).then(|| n_plus_1_runs(runs));
    let summary = summarize(&rows, &METRICS.map(|m| m.0));
    let clean = |r: &Value| {
        r.get("error").is_none() && r["problems"].as_array().is_some_and(|p| p.is_empty())
    };
    let all = |k: &str| rows.iter().all(|r| r[k].as_bool() == Some(true));
    let ok = rows.iter().all(clean)
        && n_plus_1
            .as_ref()
            .is_none_or(|n| n["clean_runs"] == n["runs"]);
    let out = json!({
        "runs": rows.len(),
        "sync": opts.sync,
        "with_download": opts.sync,
        "timers": {
            // f32 to a decimal f64: 0.1, not 0.10000000149011612.
            "vrrp_advert_s": (f64::from(opts.advert) * 1e3).round() / 1e3,
            "bfd": BFD,
            "bgp": BGP,
        },
        "clean_runs": rows.iter().filter(|r| clean(r)).count(),
        "all_kept_endpoints": all("kept_endpoints"),
        "all_no_reset": all("no_reset"),
        "summary": summary,
        "per_run": rows,
        "n_plus_1": n_plus_1,
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    } else {
        print_table(&out);
    }
    ok
}

/// The N+1 figures: (JSON key, label); seconds, or a count.
const N_PLUS_1_METRICS: [(&str, &str); 5] = [
    (
        "failed_udp_s",
        "failed slice: first UDP datagram at the server",
    ),
    ("failed_upload_s", "failed slice: TCP upload resumed"),
    ("failed_download_s", "failed slice: TCP download resumed"),
    (
        "surviving_silence_s",
        "surviving slice: longest UDP silence",
    ),
    ("surviving_lost", "surviving slice: UDP datagrams lost"),
];

/// One N+1 failover ([`failover::run_n_plus_1`]): its figures and the
/// problems of its outcome.
fn n_plus_1_run(tag: &str) -> Value {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let (_t, o) = failover::run_n_plus_1(tag);
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let mut problems = Vec::new();
        for (slice, seen) in [("failed", &o.failed), ("surviving", &o.surviving)] {
            for (what, r) in [("upload", &seen.upload), ("download", &seen.download)] {
                if let Some(e) = &r.error {
                    problems.push(format!("{slice} slice {what}: {e}"));
                } else if r.sent != r.received {
                    problems.push(format!("{slice} slice {what}: bytes lost"));
                }
            }
            if seen.udp.sources().len() != 1 {
                problems.push(format!("{slice} slice: UDP from {:?}", seen.udp.sources()));
            }
        }
        if o.resumed.iter().any(Option::is_none) {
            problems.push(format!(
                "failed slice: not every stream resumed ({:?})",
                o.resumed
            ));
        }
        json!({
            "failed_udp_s": secs(o.failed.udp.resumed_after(o.t0).0),
            "failed_upload_s": secs(o.resumed[0]),
            "failed_download_s": secs(o.resumed[1]),
            "surviving_silence_s": o.surviving_longest_silence().as_secs_f64(),
            "surviving_lost": o.surviving.udp.lost(),
            "problems": problems,
        })
    }));
    r.unwrap_or_else(|e| json!({ "error": panic_message(&*e), "problems": [] }))
}

/// `runs` N+1 failovers, with their median / min / max.
fn n_plus_1_runs(runs: u32) -> Value {
    let rows: Vec<Value> = (0..runs)
        .map(|i| {
            eprintln!("xnat-ha: N+1 failover {}/{runs}", i + 1);
            let row = n_plus_1_run(&format!("hn{i:02}"));
            eprintln!("xnat-ha: {row}");
            std::thread::sleep(Duration::from_millis(500));
            row
        })
        .collect();
    let summary = summarize(&rows, &N_PLUS_1_METRICS.map(|m| m.0));
    let clean = rows
        .iter()
        .filter(|r| {
            r.get("error").is_none() && r["problems"].as_array().is_some_and(|p| p.is_empty())
        })
        .count();
    json!({ "runs": rows.len(), "clean_runs": clean, "summary": summary, "per_run": rows })
}

fn print_table(out: &Value) {
    let rows = out["per_run"].as_array().cloned().unwrap_or_default();
    let cell = |v: &Value| v.as_f64().map_or("–".into(), |s| format!("{:.0}", s * 1e3));
    println!(
        "{} failover(s), binding sync {}; ms from the failure:",
        rows.len(),
        if out["sync"] == true { "on" } else { "off" }
    );
    print!("{:<36}", "");
    for i in 0..rows.len() {
        print!("{:>8}", format!("run {}", i + 1));
    }
    println!("{:>8}{:>8}{:>8}", "median", "min", "max");
    for (key, label) in METRICS {
        print!("{label:<36}");
        for r in &rows {
            print!("{:>8}", cell(&r[key]));
        }
        let s = &out["summary"][key];
        println!(
            "{:>8}{:>8}{:>8}",
            cell(&s["median"]),
            cell(&s["min"]),
            cell(&s["max"])
        );
    }
    println!(
        "one public endpoint per stream in every run: {}; no reset in any run: {}; clean runs: {}/{}",
        out["all_kept_endpoints"],
        out["all_no_reset"],
        out["clean_runs"],
        rows.len()
    );
    if let Some(n) = out["n_plus_1"].as_object() {
        println!("N+1, {} failover(s): median (min-max)", n["runs"]);
        for (key, label) in N_PLUS_1_METRICS {
            let s = &n["summary"][key];
            let v = |x: &Value| {
                x.as_f64().map_or("–".into(), |v| {
                    if key.ends_with("_s") {
                        format!("{:.0} ms", v * 1e3)
                    } else {
                        format!("{v:.0}")
                    }
                })
            };
            println!(
                "  {label:<48} {} ({}-{})",
                v(&s["median"]),
                v(&s["min"]),
                v(&s["max"])
            );
        }
    }
    for (i, r) in rows.iter().enumerate() {
        if let Some(e) = r["error"].as_str() {
            println!("run {}: failed: {e}", i + 1);
        }
        for p in r["problems"].as_array().into_iter().flatten() {
            println!("run {}: {}", i + 1, p.as_str().unwrap_or("?"));
        }
    }
}

fn main() {
    let args = Args::parse();
    if std::env::var_os("XNAT_BIN").is_none() {
        // Built side by side with xnat (target/<profile>/).
        let exe = std::env::current_exe().expect("current_exe");
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("XNAT_BIN", exe.with_file_name("xnat")) };
    }
    xnat_tests::netns::require_root();
    match args.cmd {
        Cmd::Demo { no_sync } => match catch_unwind(AssertUnwindSafe(|| demo(no_sync))) {
            Ok(Ok(())) => {}
            Ok(Err(problems)) => {
                eprintln!("\nxnat-ha: the failover was not clean:");
                for p in problems {
                    eprintln!("xnat-ha:   {p}");
                }
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("\nxnat-ha: the demo failed: {}", panic_message(&*e));
                std::process::exit(1);
            }
        },
        Cmd::Bench {
            runs,
            no_sync,
            json,
        } => {
            if !bench(runs, no_sync, json) {
                std::process::exit(1);
            }
        }
    }
}
