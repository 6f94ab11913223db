//! `cargo xtask soak --minutes M`: builds xnat and `xnat-soak` and runs the
//! soak (tests/src/soak.rs): churn of flows through xnat in network
//! namespaces for M minutes, then live bindings must drain to zero and the
//! agent's memory return to within 10 % of its post-warm-up level.

use anyhow::{Result, bail};

use crate::{proc, toolchain, tools, util};

/// What `cargo xtask soak` was asked to do.
pub struct Options {
    pub minutes: f64,
    pub ingress: String,
    pub release: bool,
}

pub fn run(opts: &Options) -> Result<()> {
    util::require_root(
        "soak",
        "it loads BPF programs and creates network namespaces",
    )?;
    if opts.minutes.is_nan() || opts.minutes <= 0.0 {
        bail!("--minutes must be more than 0");
    }
    toolchain::ensure_toolchain()?;
    tools::ensure_tools()?;
    tools::ensure_bpffs()?;
    proc::install_interrupt_handler();

    let mut build = util::cargo();
    build.args(["build", "--bin", "xnat", "--bin", "xnat-soak"]);
    if opts.release {
        build.arg("--release");
    }
    util::run(&mut build)?;
    let dir = util::target_dir().join(if opts.release { "release" } else { "debug" });
    let minutes = opts.minutes.to_string();
    util::run(
        std::process::Command::new(dir.join("xnat-soak"))
            .env("XNAT_BIN", dir.join("xnat"))
            .args(["--minutes", &minutes, "--ingress", &opts.ingress]),
    )
    .map_err(|e| anyhow::anyhow!("the soak failed: {e:#}"))
}
