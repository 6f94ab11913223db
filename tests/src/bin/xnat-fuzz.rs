//! `xnat-fuzz`: differential fuzzing of xnat's BPF programs against the
//! reference model (see `xnat_tests::fuzz`). Run it through
//! `cargo xtask fuzz --packets N [--seed S]` (root).
//!
//! Exit status: 0 no mismatch, 1 mismatches (each printed with its frame,
//! both outputs and a repro test) or a rule a long run never took, 2 bad
//! usage (clap) or setup error.

use clap::Parser;
use xnat_tests::fuzz::{self, Options, agent::Mode};

/// Differential fuzzing of xnat's BPF programs against the reference
/// model.
///
/// Exit status: 0 no mismatch, 1 mismatches (each printed with its frame,
/// both outputs and a repro test) or a rule of the model a long run never
/// took, 2 bad usage or setup error. Run it through `cargo xtask fuzz`
/// (root).
#[derive(Parser)]
#[command(name = "xnat-fuzz", args_override_self = true)]
struct Args {
    /// Frames to generate.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    packets: u64,
    /// The frame generator's seed.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Stop after this many mismatches.
    #[arg(long, value_name = "M", default_value_t = 10)]
    max_mismatches: usize,
    /// Report progress every N frames (0: never).
    #[arg(long = "progress", value_name = "N", default_value_t = 1_000_000)]
    progress_every: u64,
    /// Print how many frames took each path through the model and each
    /// of its rules.
    #[arg(long)]
    paths: bool,
    /// Run the agent's code (expiry sweep, flush, reload) on the same maps
    /// between frames.
    #[arg(long, overrides_with = "concurrent")]
    interleaved: bool,
    /// Run the agent's code on the same maps alongside the frames.
    #[arg(long, overrides_with = "interleaved")]
    concurrent: bool,
}

fn main() {
    let args = Args::parse();
    let opts = Options {
        packets: args.packets,
        seed: args.seed,
        max_mismatches: args.max_mismatches,
        progress_every: args.progress_every,
    };
    let paths = args.paths;
    // The last of --interleaved and --concurrent wins (overrides_with).
    let mode = if args.interleaved {
        Mode::Interleaved
    } else if args.concurrent {
        Mode::Concurrent
    } else {
        Mode::Off
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
