//! An xnat agent (`xnat attach`) in a namespace of an end-to-end topology,
//! running until dropped.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Result;

use crate::{
    netns,
    proc::{Background, Stream},
    util,
};

/// The xnat agent of one topology; stopping it (SIGINT) detaches. If it had
/// to be killed, `xnat detach` removes what it left.
pub(super) struct Agent {
    bg: Background,
    ns: String,
    xnat: PathBuf,
    iface: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        use std::os::unix::process::ExitStatusExt;
        match self.bg.stop(Duration::from_secs(10)) {
            Ok(status) if status.signal() == Some(libc::SIGKILL) => {
                let _ =
                    util::output(netns::exec(&self.ns, &self.xnat).args(["detach", &self.iface]));
            }
            Ok(_) => {}
            Err(e) => eprintln!("xtask: could not stop the xnat agent in {}: {e:#}", self.ns),
        }
    }
}

impl Agent {
    /// Starts `cmd` (an `xnat attach IFACE ...` in namespace `ns`) and
    /// waits until it has attached to `iface`; fails with what it printed
    /// on stderr if it exits first.
    pub(super) fn start(ns: &str, xnat: &Path, iface: &str, cmd: Command) -> Result<Agent> {
        let mut agent = Agent {
            bg: Background::spawn(&format!("the xnat agent in {ns}"), cmd, libc::SIGINT)?,
            ns: ns.to_owned(),
            xnat: xnat.to_owned(),
            iface: iface.to_owned(),
        };
        let attached = format!("xnat: attached to {iface}");
        agent.bg.wait_for_line(
            &format!("`{attached}`"),
            Duration::from_secs(30),
            |stream, line| stream == Stream::Stdout && line.starts_with(&attached),
        )?;
        Ok(agent)
    }
}
