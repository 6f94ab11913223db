//! `cargo xtask fuzz`: differential fuzzing of the data plane (issue #6).
//! Builds `xnat-fuzz` in release mode and runs it: seeded frames through
//! the compiled programs by BPF_PROG_TEST_RUN, compared with the reference
//! model in `tests/src/model`. A mismatch prints the frame, both outputs
//! and a repro test; a run of 1M frames or more that never took one of
//! the model's rules names it; the exit status says whether either
//! happened.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{toolchain, util};

pub struct Options {
    pub packets: u64,
    pub seed: u64,
    pub max_mismatches: usize,
    pub paths: bool,
    /// The agent's code between frames (`--interleaved`) or alongside them
    /// (`--concurrent`).
    pub interleaved: bool,
    pub concurrent: bool,
}

pub fn run(o: &Options) -> Result<()> {
    util::require_root(
        "fuzz",
        "it loads BPF programs and creates a network namespace",
    )?;
    toolchain::ensure_toolchain()?;
    util::run(util::cargo().args([
        "build",
        "--release",
        "-p",
        "xnat-tests",
        "--bin",
        "xnat-fuzz",
    ]))?;
    let bin = util::target_dir().join("release").join("xnat-fuzz");
    let mut cmd = Command::new(bin);
    cmd.args(["--packets", &o.packets.to_string()])
        .args(["--seed", &o.seed.to_string()])
        .args(["--max-mismatches", &o.max_mismatches.to_string()])
        .args(["--progress", "1000000"]);
    if o.paths {
        cmd.arg("--paths");
    }
    if o.interleaved {
        cmd.arg("--interleaved");
    }
    if o.concurrent {
        cmd.arg("--concurrent");
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("xnat-fuzz found mismatches, left rules untaken or failed ({status})");
    }
    Ok(())
}
