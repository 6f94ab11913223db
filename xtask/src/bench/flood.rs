//! The inbound-flood part of `cargo xtask bench` (issue 14): runs
//! `xnat-flood` (tests/src/bin/xnat-flood.rs, the scenario in
//! tests/src/flood/) against the release `xnat` and returns its figures.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// How long the inside hosts open new flows in each case, s (one every
/// 10 ms: 400 flows, 200 with `--quick`).
const SECS: &str = "4";
const QUICK_SECS: &str = "2";

/// Runs `bin` (xnat-flood) with `xnat` as the binary under test.
pub fn run(bin: &Path, xnat: &Path, quick: bool) -> Result<Value> {
    let out = Command::new(bin)
        .env("XNAT_BIN", xnat)
        .args(["--secs", if quick { QUICK_SECS } else { SECS }])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start {}", bin.display()))?;
    if !out.status.success() {
        bail!("xnat-flood failed ({})", out.status);
    }
    serde_json::from_slice(&out.stdout).context("parsing xnat-flood's output")
}
