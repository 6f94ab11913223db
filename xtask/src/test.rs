//! `cargo xtask test`: every test layer, including the root-only ones.

use anyhow::{Context, Result};

use crate::{toolchain, tools, util};

pub fn run(cargo_args: &[String]) -> Result<()> {
    util::require_root(
        "test",
        "the tests load BPF programs and create network namespaces",
    )?;
    toolchain::ensure_toolchain()?;
    tools::ensure_tools()?;
    tools::ensure_bpffs()?;

    // The end-to-end tests run the real `xnat` binary; build it first and tell them where it is.
    util::run(util::cargo().args(["build", "--workspace", "--bins"]))?;
    let xnat = util::target_dir().join("debug").join("xnat");
    // `cargo test` prints its usual `test result:` lines, which CI reads; a failure is its exit
    // status, turned into ours. --no-fail-fast: one failing suite must not hide the others.
    util::run(
        util::cargo()
            .env("XNAT_BIN", &xnat)
            .args(["test", "--workspace", "--no-fail-fast"])
            .args(cargo_args),
    )
    .context("tests failed")
}
