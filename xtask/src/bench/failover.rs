//! The failover part of `cargo xtask bench` (issue 18): runs `xnat-ha bench
//! --json` (tests/src/bin/xnat-ha.rs: an active/standby pair with keepalived
//! and BIRD, tests/src/ha_topo.rs, whose active gateway dies while TCP and
//! UDP streams run through it) against the release `xnat` and returns its
//! figures.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// Failovers, each on a fresh pair.
const RUNS: &str = "5";
const QUICK_RUNS: &str = "2";

/// Runs `bin` (xnat-ha) with `xnat` as the binary under test. A run that
/// was not clean makes `xnat-ha` exit 1 but still print its figures: the
/// report shows what went wrong.
pub fn run(bin: &Path, xnat: &Path, quick: bool) -> Result<Value> {
    let out = Command::new(bin)
        .env("XNAT_BIN", xnat)
        .args([
            "bench",
            "--json",
            "--runs",
            if quick { QUICK_RUNS } else { RUNS },
        ])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start {}", bin.display()))?;
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(v) => Ok(v),
        Err(e) if out.status.success() => Err(e).context("parsing xnat-ha's output"),
        Err(_) => bail!("xnat-ha failed ({})", out.status),
    }
}
