//! `cargo xtask bench`: the benchmark suite of issue 4. Builds in release
//! mode, runs `xnat-bench` (BPF_PROG_TEST_RUN: per-packet cost, scale,
//! memory, expiry sweep), measures xnat against nftables masquerade and
//! plain forwarding end to end in network namespaces, runs `xnat-flood`
//! (an outside SYN flood while inside hosts open flows, issue 14), runs
//! `xnat-ha bench` (the failover of an active/standby pair, issue 18),
//! measures xnat's NAT64 against TAYGA (issue 19), prints a table and
//! writes BENCHMARKS.md at the workspace root.

mod agent;
mod cpu;
mod e2e;
mod failover;
mod flood;
mod iperf;
mod nat64;
mod net;
mod netdev;
mod profile;
mod report;
mod rounds;
mod splice;
mod xdp_rate;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{proc, toolchain, tools, util};

/// What `cargo xtask bench` was asked to do.
pub struct Options {
    pub quick: bool,
    pub only: String,
    pub rounds: Option<usize>,
    /// End-to-end modes to run (`e2e::Mode::key`s); empty: all of them.
    pub modes: Vec<String>,
    pub output: Option<PathBuf>,
}

/// Removes the scratch directory on the way out, error or not.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn ensure_bench_tools() -> Result<()> {
    // Beyond tools::TOOLS: netsniff-ng (trafgen, see the report's method
    // notes), taskset, perf.
    let mut missing = Vec::new();
    for (tool, pkg) in [
        ("trafgen", "netsniff-ng"),
        ("taskset", "util-linux"),
        // perf: where the nanoseconds go (bench/profile.rs).
        ("perf", "linux-perf"),
    ] {
        if util::find_in_path(tool).is_none() {
            missing.push(pkg);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if util::find_in_path("apt-get").is_none() {
        bail!(
            "missing tools; install these packages (Debian names): {}",
            missing.join(" ")
        );
    }
    println!("xtask: installing {} with apt-get", missing.join(" "));
    util::run(Command::new("apt-get").arg("update")).context("apt-get update failed")?;
    util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )
    .context("apt-get install failed")
}

fn read_first(path: &str) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn loadavg() -> String {
    read_first("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn run_micro(bin: &Path, quick: bool, out: &Path) -> Result<Value> {
    let mut cmd = Command::new(bin);
    cmd.arg("--out").arg(out);
    if quick {
        cmd.arg("--quick");
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {}", bin.display()))?;
    let status = child.wait();
    // xnat-bench pins maps for the expiry sweep and removes them itself,
    // unless a signal (Ctrl-C) ended it first.
    let pins = PathBuf::from(format!("/sys/fs/bpf/xnat-bench-{}", child.id()));
    if pins.exists() {
        let _ = fs::remove_dir_all(&pins);
    }
    let status = status.context("waiting for xnat-bench")?;
    if !status.success() {
        bail!("xnat-bench failed ({status})");
    }
    let text = fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    serde_json::from_str(&text).context("parsing xnat-bench's output")
}

/// A part of the suite whose figures live in marked parts of BENCHMARKS.md
/// (`splice`): whether this run measured it, every part it writes, and
/// the parts with its figures.
struct Spliced {
    on: bool,
    parts: &'static [splice::Part],
    figure_parts: &'static [splice::Part],
}

/// What to write to `path`, given the report `md` of this run: a run of
/// only spliced parts (`xnat-bench`'s, the flood, the failover, NAT64)
/// puts their parts into the existing file and leaves the rest as it is; a
/// run of the other parts (end to end) keeps the figures of the spliced
/// parts it did not run from the existing file (see the Method's "Runs of
/// one part").
fn merge_with_existing(
    path: &Path,
    md: String,
    others_on: bool,
    spliced: &[Spliced],
) -> Result<String> {
    let Ok(existing) = fs::read_to_string(path) else {
        return Ok(md);
    };
    let mut out = if others_on {
        md.clone()
    } else {
        existing.clone()
    };
    for s in spliced {
        out = match (others_on, s.on) {
            (false, true) => splice::transplant(&md, &out, s.parts)
                .with_context(|| format!("putting this run's figures into {}", path.display()))?,
            (true, false) => splice::transplant(&existing, &out, s.figure_parts)
                .with_context(|| format!("keeping the earlier figures of {}", path.display()))?,
            _ => out,
        };
    }
    Ok(out)
}

pub fn run(opts: &Options) -> Result<()> {
    util::require_root(
        "bench",
        "it loads BPF programs and creates network namespaces",
    )?;
    let (micro_on, e2e_on, flood_on, failover_on, nat64_on) = match opts.only.as_str() {
        "micro" => (true, false, false, false, false),
        "e2e" => (false, true, false, false, false),
        "flood" => (false, false, true, false, false),
        "failover" => (false, false, false, true, false),
        "nat64" => (false, false, false, false, true),
        _ => (true, true, true, true, true),
    };
    let command = format!(
        "cargo xtask bench{}{}{}",
        if opts.quick { " --quick" } else { "" },
        if opts.only == "all" {
            String::new()
        } else {
            format!(" --only {}", opts.only)
        },
        if opts.modes.is_empty() {
            String::new()
        } else {
            format!(" --modes {}", opts.modes.join(","))
        }
    );
    // Checked before anything is built or measured.
    let wanted: Vec<e2e::Mode> = opts
        .modes
        .iter()
        .map(|k| {
            e2e::Mode::from_key(k).with_context(|| {
                let keys: Vec<&str> = e2e::Mode::ALL.iter().map(|m| m.key()).collect();
                format!("no end-to-end mode {k:?} (modes: {})", keys.join(", "))
            })
        })
        .collect::<Result<_>>()?;
    toolchain::ensure_toolchain()?;
    tools::ensure_tools()?;
    if e2e_on {
        ensure_bench_tools()?;
    }
    tools::ensure_bpffs()?;
    proc::install_interrupt_handler();

    let mut build = util::cargo();
    build.args(["build", "--release", "--bin", "xnat"]);
    // xnat-bench also attaches the end-to-end bare XDP redirect.
    if micro_on || e2e_on {
        build.args(["--bin", "xnat-bench"]);
    }
    if flood_on {
        build.args(["--bin", "xnat-flood"]);
    }
    if failover_on {
        build.args(["--bin", "xnat-ha"]);
    }
    util::run(&mut build)?;
    let release = util::target_dir().join("release");
    let (xnat, bench_bin, flood_bin, ha_bin) = (
        release.join("xnat"),
        release.join("xnat-bench"),
        release.join("xnat-flood"),
        release.join("xnat-ha"),
    );

    let tmp = TempDir(std::env::temp_dir().join(format!("xnat-bench-{}", std::process::id())));
    fs::create_dir_all(&tmp.0)?;
    let started = Instant::now();
    let load_before = loadavg();
    let mut notes = Vec::new();

    let micro = if micro_on {
        println!("xtask: bench: BPF_PROG_TEST_RUN measurements (xnat-bench)");
        let (date, load_before, micro_started) = (date(), loadavg(), Instant::now());
        let mut micro = run_micro(&bench_bin, opts.quick, &tmp.0.join("micro.json"))?;
        println!("xtask: bench: where the nanoseconds go (perf record of xnat-bench)");
        micro["profile"] = match profile::run(&bench_bin, &tmp.0)? {
            Ok(p) => p,
            Err(why) => serde_json::json!({ "unavailable": why }),
        };
        micro["run"] = serde_json::json!({
            "command": command,
            "date": date,
            "load_before": load_before,
            "load_after": loadavg(),
            "secs": micro_started.elapsed().as_secs_f64(),
        });
        Some(micro)
    } else {
        None
    };
    proc::check_interrupted()?;

    let e2e = if e2e_on {
        let mut modes = vec![e2e::Mode::Plain, e2e::Mode::Nft, e2e::Mode::Xnat];
        if e2e::has_fast_path(&xnat) {
            modes.extend([e2e::Mode::XnatFast, e2e::Mode::XnatFastTc]);
        } else {
            notes.push(
                "`xnat attach` has no `--fast-path` option in this build: the fast-path column \
                 and its targets are missing."
                    .to_owned(),
            );
        }
        modes.push(e2e::Mode::XdpRedirect);
        if !wanted.is_empty() {
            modes.retain(|m| wanted.contains(m));
            if modes.is_empty() {
                bail!("none of the modes asked for (--modes) can run with this build");
            }
            notes.push(format!(
                "`--modes`: end to end, only {}; targets comparing with a mode not run are n/a.",
                modes
                    .iter()
                    .map(|m| m.label())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let plan = if opts.quick {
            e2e::Plan {
                rounds: opts.rounds.unwrap_or(2),
                udp_secs: 1.0,
                tcp_secs: 2,
                flow_secs: 1.0,
            }
        } else {
            e2e::Plan {
                // 7: TCP's "not below" is a sign test over the rounds
                // (report.rs), whose false alarm is 1 in 2^rounds.
                rounds: opts.rounds.unwrap_or(7),
                udp_secs: 3.0,
                tcp_secs: 3,
                // ~30k connections: well under the 64512 TCP ports of xnat's
                // one pool address (reset flows keep their mapping 30 s).
                flow_secs: 1.0,
            }
        };
        println!("xtask: bench: end to end ({} rounds)", plan.rounds);
        Some(e2e::run(&xnat, &bench_bin, &modes, &plan, &tmp.0)?)
    } else {
        None
    };

    if let Some(modes) = e2e.as_ref().and_then(|e| e["modes"].as_object()) {
        let num = |m: &Value, k: &str| m[k].as_f64().unwrap_or(f64::NAN);
        for m in modes.values() {
            let label = m["label"].as_str().unwrap_or("?");
            let busy = num(m, "udp_xdp_gw_cpu_busy_pct");
            let offered = num(m, "udp_xdp_offered_pps");
            let refused = offered - num(m, "udp_xdp_accepted_pps");
            if refused < 0.01 * offered {
                notes.push(format!(
                    "UDP with the XDP generator, {label}: the gateway kept up with the generator \
                     (gateway CPU {busy:.0} % busy, {:.1} k of {:.0} k packets/s refused), so its \
                     figure is a lower bound set by the sender side, and ratios against it are \
                     bounds too.",
                    refused / 1e3,
                    offered / 1e3
                ));
            } else if busy < 90.0 {
                notes.push(format!(
                    "UDP with the XDP generator, {label}: the gateway's receive ring was full \
                     ({:.0} k of {:.0} k packets/s refused) while its CPU was only {busy:.0} % \
                     busy (median over the rounds; {:.0} % stolen by the hypervisor): in some \
                     rounds the gateway's NAPI thread did not run all the time, so the figure \
                     understates it (see the per-round samples in bench-results.json).",
                    refused / 1e3,
                    offered / 1e3,
                    num(m, "udp_xdp_gw_cpu_steal_pct")
                ));
            }
        }
        for (key, m) in modes {
            let label = m["label"].as_str().unwrap_or("?");
            let busy = num(m, "gw_cpu_busy_pct");
            let offered = num(m, "udp_sent_pps");
            let refused = num(m, "udp_refused_pps");
            if busy < 90.0 || refused < 0.01 * offered {
                notes.push(format!(
                    "UDP with the AF_PACKET sender, {label}: the gateway kept up with the sender \
                     (gateway CPU {busy:.0} % busy, {:.1} k of {:.0} k packets/s refused), so its \
                     figure is a lower bound set by the sender side{}.",
                    refused / 1e3,
                    offered / 1e3,
                    if [e2e::Mode::XnatFast, e2e::Mode::XdpRedirect]
                        .iter()
                        .any(|x| x.key() == key)
                    {
                        " (here int0's XDP runs on the sender's CPU, see Method)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    if let Some(errors) = e2e.as_ref().and_then(|e| e["udp_xdp_errors"].as_object()) {
        for (mode, e) in errors {
            notes.push(format!(
                "UDP with the XDP generator ({mode}): no figure (NaN): {}. The kernel must \
                 support BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (Linux 5.18 or later).",
                e.as_str().unwrap_or("?")
            ));
        }
    }
    proc::check_interrupted()?;

    let flood = if flood_on {
        println!("xtask: bench: inbound SYN flood (xnat-flood)");
        let (date, load_before, flood_started) = (date(), loadavg(), Instant::now());
        let mut v = flood::run(&flood_bin, &xnat, opts.quick)?;
        v["run"] = serde_json::json!({
            "command": command,
            "date": date,
            "load_before": load_before,
            "load_after": loadavg(),
            "secs": flood_started.elapsed().as_secs_f64(),
        });
        Some(v)
    } else {
        None
    };

    proc::check_interrupted()?;

    let failover = if failover_on {
        println!("xtask: bench: failover of an active/standby pair (xnat-ha bench)");
        let (date, load_before, failover_started) = (date(), loadavg(), Instant::now());
        let mut v = failover::run(&ha_bin, &xnat, opts.quick)?;
        v["run"] = serde_json::json!({
            "command": command,
            "date": date,
            "load_before": load_before,
            "load_after": loadavg(),
            "secs": failover_started.elapsed().as_secs_f64(),
        });
        Some(v)
    } else {
        None
    };

    proc::check_interrupted()?;

    let nat64 = if nat64_on {
        println!("xtask: bench: NAT64, xnat against TAYGA");
        let plan = if opts.quick {
            nat64::Plan {
                rounds: opts.rounds.unwrap_or(2),
                udp_secs: 1.0,
                tcp_secs: 2,
            }
        } else {
            nat64::Plan {
                rounds: opts.rounds.unwrap_or(5),
                udp_secs: 3.0,
                tcp_secs: 3,
            }
        };
        let (date, load_before, nat64_started) = (date(), loadavg(), Instant::now());
        // A NAT64 run that cannot measure at all is reported, not fatal:
        // the other parts of a full run are worth keeping.
        let mut v = nat64::run(&xnat, &plan, &tmp.0).unwrap_or_else(|e| {
            eprintln!("xtask: bench: NAT64: {e:#}");
            serde_json::json!({ "error": format!("{e:#}") })
        });
        proc::check_interrupted()?;
        v["run"] = serde_json::json!({
            "command": command,
            "date": date,
            "load_before": load_before,
            "load_after": loadavg(),
            "secs": nat64_started.elapsed().as_secs_f64(),
            "kernel": read_first("/proc/sys/kernel/osrelease"),
            // Whether the kernel loads modules at all (why Jool is not compared).
            "kernel_modules": Path::new("/proc/modules").exists(),
        });
        Some(v)
    } else {
        None
    };

    if opts.quick {
        notes.push("`--quick`: fewer and shorter runs, and no 1M-binding scale.".to_owned());
    }
    let machine = report::Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: cpu_model(),
        kernel: read_first("/proc/sys/kernel/osrelease"),
        date: date(),
        load_before,
        load_after: loadavg(),
        duration_s: started.elapsed().as_secs_f64(),
        command,
    };
    let md = report::markdown(
        &machine,
        micro.as_ref(),
        e2e.as_ref(),
        flood.as_ref(),
        failover.as_ref(),
        nat64.as_ref(),
        &notes,
    );
    let path = opts
        .output
        .clone()
        .unwrap_or_else(|| util::workspace_root().join("BENCHMARKS.md"));
    let spliced = [
        Spliced {
            on: micro_on,
            parts: &report::micro::PARTS,
            figure_parts: &report::micro::FIGURE_PARTS,
        },
        Spliced {
            on: flood_on,
            parts: &report::flood::PARTS,
            figure_parts: &report::flood::FIGURE_PARTS,
        },
        Spliced {
            on: failover_on,
            parts: &report::failover::PARTS,
            figure_parts: &report::failover::FIGURE_PARTS,
        },
        Spliced {
            on: nat64_on,
            parts: &report::nat64::PARTS,
            figure_parts: &report::nat64::FIGURE_PARTS,
        },
    ];
    let md = merge_with_existing(&path, md, e2e_on, &spliced)?;
    println!("\n{md}");
    fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    // The raw figures (every sample), for a closer look.
    let raw = serde_json::json!({
        "micro": micro,
        "e2e": e2e,
        "flood": flood,
        "failover": failover,
        "nat64": nat64,
    });
    let raw_path = util::target_dir().join("bench-results.json");
    fs::write(&raw_path, serde_json::to_string_pretty(&raw)?)
        .with_context(|| format!("writing {}", raw_path.display()))?;
    println!("xtask: wrote {} and {}", path.display(), raw_path.display());
    Ok(())
}
