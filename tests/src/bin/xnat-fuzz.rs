//! `xnat-fuzz`: differential fuzzing of xnat's BPF programs against the
//! reference model (see `xnat_tests::fuzz`). Run it through
//! `cargo xtask fuzz --packets N [--seed S]` (root).
//!
//! Exit status: 0 no mismatch, 1 mismatches (each printed with its frame,
//! both outputs and a repro test), 2 bad usage or setup error.

use anyhow::{Context as _, Result, bail};
use xnat_tests::fuzz::{self, Options, agent::Mode};

fn parse() -> Result<(Options, bool, Mode)> {
    let mut o = Options {
        packets: 100_000,
        seed: 1,
        max_mismatches: 10,
        progress_every: 1_000_000,
    };
    let mut paths = false;
    let mut mode = Mode::Off;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<u64> {
            let v = args
                .next()
                .with_context(|| format!("{name} needs a value"))?;
            v.parse().with_context(|| format!("{name} {v}"))
        };
        match a.as_str() {
            "--packets" => o.packets = value("--packets")?,
            "--seed" => o.seed = value("--seed")?,
            "--max-mismatches" => o.max_mismatches = value("--max-mismatches")? as usize,
            "--progress" => o.progress_every = value("--progress")?,
            "--paths" => paths = true,
            // The agent's code (expiry sweep, flush, reload) on the same
            // maps: between frames, or alongside them.
            "--interleaved" => mode = Mode::Interleaved,
            "--concurrent" => mode = Mode::Concurrent,
            _ => {
                bail!(
                    "unknown argument {a} (--packets N --seed S --max-mismatches M --progress N --paths --interleaved --concurrent)"
                )
            }
        }
    }
    Ok((o, paths, mode))
}

fn main() {
    let (opts, paths, mode) = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xnat-fuzz: {e:#}");
            std::process::exit(2);
        }
    };
    xnat_tests::bpf::require_root();
    println!(
        "xnat-fuzz: {} frames, seed {} (stops after {} mismatches)",
        opts.packets, opts.seed, opts.max_mismatches
    );
    let report = match fuzz::run_isolated_with(&opts, mode) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xnat-fuzz: error: {e:#}");
            std::process::exit(2);
        }
    };
    if paths {
        // Which paths through the model the frames took, then each rule.
        for (path, n) in &report.paths {
            println!("{n:>9}  {path}");
        }
        println!("xnat-fuzz: frames per rule of the model:");
        for r in xnat_tests::model::Rule::ALL {
            let n = report.rules.get(r).copied().unwrap_or(0);
            println!("{n:>9}  {}", r.describe());
        }
    }
    println!("xnat-fuzz: {}", report.summary());
    for r in report.never_hit() {
        println!("xnat-fuzz: never taken: {}", r.describe());
    }
    let coverage = report.coverage_problem();
    if let Some(text) = &coverage {
        eprintln!("xnat-fuzz: {text}");
    }
    if !report.mismatches.is_empty() || coverage.is_some() {
        std::process::exit(1);
    }
}
