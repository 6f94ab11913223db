//! Support for the fault, abuse and soak tests (tests/fault_*.rs,
//! tests/abuse_*.rs, the soak): the NAPT topology of [`crate::napt_topo`]
//! with an agent the test itself starts, SIGKILLs and restarts (the
//! topology's own `attach` allows one agent per topology), and the agent's
//! pid and memory.
//!
//! The load generators are in [`crate::load`], the inside-host packet
//! counters in [`crate::nft`].

use std::time::Duration;

use crate::napt_topo::NaptTopo;
use crate::netns::{BgChild, describe, xnat_bin};
use crate::topology::{Ingress, attached, pins_for};
use crate::wait::wait_for;

/// How long `xnat attach` may take to print its ready line (a loaded
/// 2-core machine verifying four programs).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the agent may take to exit after SIGTERM or `xnat detach`.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A NAPT topology whose agent the test manages. Dropping it stops the
/// agent (SIGTERM: it detaches), removes the pid/state files a killed
/// agent left in /run/xnat, then the topology (pins, namespaces).
pub struct FaultTopo {
    agent: Option<BgChild>,
    pub t: NaptTopo,
}

impl FaultTopo {
    /// Builds the topology (see [`NaptTopo::new`]) without attaching.
    pub fn new(tag: &str, mode: Ingress) -> FaultTopo {
        FaultTopo {
            agent: None,
            t: NaptTopo::new(tag, mode),
        }
    }

    /// Starts `xnat attach EXT --ingress MODE ARGS...` in the gateway and
    /// waits for its ready line, which it returns.
    pub fn start(&mut self, args: &[&str]) -> String {
        assert!(self.agent.is_none(), "an agent is already running");
        let bin = xnat_bin();
        let mut v = vec![
            bin.to_str().unwrap(),
            "attach",
            &self.t.ext,
            "--ingress",
            self.t.mode.as_str(),
        ];
        v.extend_from_slice(args);
        let mut agent = self.t.nat.spawn(&v);
        let line = wait_ready(&mut agent, &self.t.ext);
        self.agent = Some(agent);
        line
    }

    /// The running agent.
    pub fn agent(&mut self) -> &mut BgChild {
        self.agent.as_mut().expect("no agent running")
    }

    /// Takes the agent out (e.g. to wait for it to exit on its own).
    pub fn take_agent(&mut self) -> BgChild {
        self.agent.take().expect("no agent running")
    }

    /// The agent's pid. `nsenter --net` execs the program without forking,
    /// so the child's pid is the agent's.
    pub fn pid(&self) -> u32 {
        self.agent.as_ref().expect("no agent running").pid()
    }

    /// The agent's resident set size in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Kills the agent with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        let mut agent = self.take_agent();
        agent.signal(libc::SIGKILL);
        let st = agent.wait_exit(EXIT_TIMEOUT);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(libc::SIGKILL),
            "agent did not die of SIGKILL: {}",
            describe(st)
        );
    }

    /// Stops the agent with SIGTERM and checks it exited 0 and left no
    /// program and no pin behind.
    pub fn stop(&mut self) {
        let mut agent = self.take_agent();
        let (st, killed) = agent.terminate(EXIT_TIMEOUT);
        assert!(
            !killed && st.success(),
            "agent did not exit 0 on SIGTERM ({}{})\nstdout: {}\nstderr: {}",
            describe(st),
            if killed { ", needed SIGKILL" } else { "" },
            agent.stdout(),
            agent.stderr()
        );
        self.assert_clean("after the agent exited on SIGTERM");
    }

    /// Panics unless EXT has no program, no pin and no /run/xnat file left.
    pub fn assert_clean(&self, when: &str) {
        let a = attached(&self.t.nat, &self.t.ext);
        assert!(a.is_empty(), "{when}: programs left on EXT:\n{}", a.raw);
        let pins = pins_for(&self.t.ext);
        assert!(pins.is_empty(), "{when}: pins left: {pins:?}");
        let files = run_files(&self.t.ext);
        assert!(
            files.is_empty(),
            "{when}: files left in /run/xnat: {files:?}"
        );
    }
}

impl Drop for FaultTopo {
    fn drop(&mut self) {
        // The agent first (SIGTERM: it detaches), then what a killed agent
        // left in /run/xnat; the topology's fields drop after this.
        self.agent = None;
        for p in run_files(&self.t.ext) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Waits for the ready line of the agent `agent` attaching `ext` and
/// returns it; panics with its output if it exits first.
pub fn wait_ready(agent: &mut BgChild, ext: &str) -> String {
    let ready = format!("xnat: attached to {ext}");
    wait_for(READY_TIMEOUT, &format!("`{ready}`"), || {
        if let Some(s) = agent.try_exit() {
            panic!(
                "`{}` exited ({}) before it was ready\nstdout: {}\nstderr: {}",
                agent.what(),
                describe(s),
                agent.stdout(),
                agent.stderr()
            );
        }
        agent
            .stdout()
            .lines()
            .find(|l| l.starts_with(&ready))
            .map(str::to_string)
    })
}

/// Files in /run/xnat named after the pin directory of `ext`
/// (`EXT@ns<inode>.pid`, `.state`).
pub fn run_files(ext: &str) -> Vec<std::path::PathBuf> {
    let prefix = format!("{ext}@");
    let Ok(rd) = std::fs::read_dir("/run/xnat") else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) || n.starts_with(&format!(".{prefix}"))
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// VmRSS of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {path}:\n{text}"))
}
