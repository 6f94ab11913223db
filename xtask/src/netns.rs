//! Network namespaces for the demo.
//!
//! Commands enter a namespace with `nsenter --net=/run/netns/NAME`, not `ip netns exec`: the
//! latter gives its command a fresh /sys, which hides the bpffs at /sys/fs/bpf where xnat pins
//! its maps (README, "Namespaces, containers and pins").

use std::{
    ffi::OsStr,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result};

use crate::{proc, util};

/// A command that runs `program` inside namespace `ns`.
pub fn exec(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(program);
    cmd
}

/// Runs a shell snippet inside `ns` (for sysctls: writes to /proc/sys/net apply to the
/// writer's namespace, and `sh` is present where `sysctl` may not be).
pub fn sh(ns: &str, script: &str) -> Result<()> {
    util::output(exec(ns, "sh").args(["-c", script])).map(drop)
}

/// Runs `ip ARGS` inside `ns`.
pub fn ip(ns: &str, args: &[&str]) -> Result<()> {
    util::output(exec(ns, "ip").args(args)).map(drop)
}

/// Waits until something listens on `port` in `ns` (`proto` is "tcp" or "udp").
pub fn wait_listening(ns: &str, proto: &str, port: u16, timeout: Duration) -> Result<()> {
    let flag = if proto == "tcp" { "-Hltn" } else { "-Hlun" };
    let filter = format!("sport = :{port}");
    proc::poll_until(
        &format!("a {proto} listener on port {port} in {ns}"),
        timeout,
        || {
            exec(ns, "ss")
                .args([flag, &filter])
                .stderr(Stdio::null())
                .output()
                .is_ok_and(|o| o.status.success() && !o.stdout.trim_ascii().is_empty())
        },
    )
}

/// Named network namespaces that are deleted again when this is dropped.
pub struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// Creates the namespaces (deleting stale ones of the same names first) with `lo` up.
    pub fn create(names: &[&str]) -> Result<Self> {
        // The guard exists before the first namespace, so a failure half-way cleans up.
        let mut guard = Self { names: Vec::new() };
        for name in names {
            if Path::new("/run/netns").join(name).exists() {
                println!("xtask: deleting stale namespace {name}");
                delete(name);
            }
            util::output(Command::new("ip").args(["netns", "add", name]))
                .with_context(|| format!("could not create namespace {name}"))?;
            guard.names.push((*name).to_owned());
            ip(name, &["link", "set", "lo", "up"])?;
        }
        Ok(guard)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            delete(name);
        }
    }
}

fn delete(name: &str) {
    let result = Command::new("ip").args(["netns", "del", name]).output();
    match result {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "xtask: could not delete namespace {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(err) => eprintln!("xtask: could not run `ip netns del {name}`: {err}"),
    }
}
