//! Support for the fault, abuse and soak tests (tests/fault_*.rs,
//! tests/abuse_*.rs, the soak): the NAPT topology of [`crate::napt_topo`]
//! with an agent the test itself starts, SIGKILLs and restarts (one at a
//! time, as an [`crate::agent::Agent`]), and the agent's pid and memory.
//!
//! The load generators are in [`crate::load`], the inside-host packet
//! counters in [`crate::nft`].

use crate::agent::{Agent, rss_kib};
use crate::napt_topo::NaptTopo;
use crate::topology::{Ingress, attached, pins_for};

/// A NAPT topology whose agent the test manages. Dropping it stops the
/// agent (SIGTERM: it detaches), removes the pid/state files a killed
/// agent left in /run/xnat, then the topology (pins, namespaces).
pub struct FaultTopo {
    pub t: NaptTopo,
}

impl FaultTopo {
    /// Builds the topology (see [`NaptTopo::new`]) without attaching.
    pub fn new(tag: &str, mode: Ingress) -> FaultTopo {
        FaultTopo {
            t: NaptTopo::new(tag, mode),
        }
    }

    /// Starts `xnat attach EXT --ingress MODE ARGS...` in the gateway and
    /// waits until it is ready; returns its ready line.
    pub fn start(&mut self, args: &[&str]) -> String {
        self.t.start_agent(args)
    }

    /// The running agent.
    pub fn agent(&mut self) -> &mut Agent {
        self.t.agent()
    }

    /// Takes the agent out (e.g. to wait for it to exit on its own).
    pub fn take_agent(&mut self) -> Agent {
        self.t.take_agent()
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.t.agent.as_ref().expect("no agent running").pid()
    }

    /// The agent's resident set size in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Kills the agent with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        self.take_agent().kill9();
    }

    /// Stops the agent with SIGTERM and checks it exited 0 and left no
    /// program and no pin behind.
    pub fn stop(&mut self) {
        self.take_agent().stop();
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
        self.t.agent = None;
        for p in run_files(&self.t.ext) {
            let _ = std::fs::remove_file(p);
        }
    }
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
