//! `cargo xtask build`.

use anyhow::Result;

use crate::{toolchain, util};

pub fn run(release: bool) -> Result<()> {
    toolchain::ensure_toolchain()?;
    let mut cmd = util::cargo();
    cmd.args(["build", "--workspace"]);
    if release {
        cmd.arg("--release");
    }
    util::run(&mut cmd)
}
