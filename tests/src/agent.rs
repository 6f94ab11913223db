//! The xnat agent of an end-to-end test, and the verbs run against its
//! interface: one way to start `xnat attach` in a namespace, wait until it
//! is ready, stop it (SIGTERM), kill it (SIGKILL), run `xnat stats`,
//! `flows`, ... next to it and read its counters. Every topology holds its
//! agent as an [`Agent`]; dropping one (also when a test panics) stops the
//! agent with SIGTERM, so it detaches, and SIGKILLs it if it does not exit.
//!
//! Waits are generous: a deadline only matters when something is wrong,
//! and a loaded 2-CPU machine verifying the programs can take tens of
//! seconds for an attach.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output};
use std::time::Duration;

use serde_json::Value;

use crate::netns::{BgChild, CMD_TIMEOUT, Netns, describe, run_cmd, xnat_bin};
use crate::topology::{Ingress, attached, json_counter};
use crate::wait::wait_for;

/// How long an agent may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an agent may take to exit after SIGTERM, SIGKILL or `xnat
/// detach`.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// `xnat` verbs run in one network namespace, for one interface.
#[derive(Clone, Debug)]
pub struct Xnat {
    /// /run/netns/NAME of the namespace.
    ns: PathBuf,
    iface: String,
}

impl Xnat {
    /// Verbs in `ns` about interface `iface`.
    pub fn new(ns: &Netns, iface: &str) -> Xnat {
        Xnat {
            ns: ns.path(),
            iface: iface.to_string(),
        }
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// `nsenter --net=NS -- PROGRAM`.
    fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.ns.display()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// `xnat ARGS` (as given), whatever the result.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.cmd(xnat_bin());
        cmd.args(args);
        run_cmd(&mut cmd, CMD_TIMEOUT)
    }

    /// `xnat ARGS`; panics unless it succeeds; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        ok(args.join(" "), self.run(args))
    }

    /// `xnat ARGS -i IFACE`, whatever the result.
    pub fn on(&self, args: &[&str]) -> Output {
        let mut v = args.to_vec();
        v.extend_from_slice(&["-i", &self.iface]);
        self.run(&v)
    }

    /// `xnat ARGS -i IFACE`; panics unless it succeeds; returns stdout.
    pub fn on_ok(&self, args: &[&str]) -> String {
        ok(
            format!("{} -i {}", args.join(" "), self.iface),
            self.on(args),
        )
    }

    /// `xnat ARGS -i IFACE` (ARGS with `--json`), parsed.
    pub fn on_json(&self, args: &[&str]) -> Value {
        let out = self.on_ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("`xnat {}` is not JSON ({e}): {out}", args.join(" ")))
    }

    /// `xnat stats -i IFACE --json`.
    pub fn stats(&self) -> Value {
        self.on_json(&["stats", "--json"])
    }

    /// A counter of `xnat stats --json` by name; `None` if this build has
    /// no such counter.
    pub fn try_counter(&self, name: &str) -> Option<u64> {
        json_counter(&self.stats()["counters"], name)
    }

    /// A counter of `xnat stats --json` by name; panics if absent.
    pub fn counter(&self, name: &str) -> u64 {
        let v = self.stats();
        json_counter(&v["counters"], name)
            .unwrap_or_else(|| panic!("`xnat stats --json` has no counter {name:?}: {v}"))
    }

    /// All counters of `xnat stats --json`, by name.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let v = self.stats();
        let m = v["counters"]
            .as_object()
            .unwrap_or_else(|| panic!("`xnat stats --json` has no counters object: {v}"));
        m.iter()
            .map(|(k, x)| (k.clone(), x.as_u64().unwrap_or(0)))
            .collect()
    }
}

/// Stdout of a verb that must have succeeded (`what` names it).
fn ok(what: String, out: Output) -> String {
    assert!(
        out.status.success(),
        "`xnat {what}` failed ({}):\nstdout: {}\nstderr: {}",
        describe(out.status),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `xnat ARGS` in `ns`: (exit code, stdout, stderr).
pub fn run_xnat(ns: &Netns, args: &[&str]) -> (i32, String, String) {
    let out = Xnat::new(ns, "").run(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `xnat` agent (or an attach expected to fail), as a background
/// child of the test.
pub struct Agent {
    child: BgChild,
    xnat: Xnat,
    ready: Option<String>,
}

impl Agent {
    /// `xnat attach IFACE --ingress MODE ARGS...` in `ns`, once ready.
    pub fn attach(ns: &Netns, iface: &str, mode: Ingress, args: &[&str]) -> Agent {
        let mut a = Agent::spawn_attach(ns, iface, mode, args);
        a.wait_ready();
        a
    }

    /// `xnat ARGS...` (an attach in any form, e.g. `attach --config F`)
    /// in `ns` for interface `iface`, once ready.
    pub fn start(ns: &Netns, iface: &str, args: &[&str]) -> Agent {
        let mut a = Agent::spawn(ns, iface, args);
        a.wait_ready();
        a
    }

    /// `xnat attach IFACE --ingress MODE ARGS...` in `ns`, not waiting.
    pub fn spawn_attach(ns: &Netns, iface: &str, mode: Ingress, args: &[&str]) -> Agent {
        let mut v = vec!["attach", iface, "--ingress", mode.as_str()];
        v.extend_from_slice(args);
        Agent::spawn(ns, iface, &v)
    }

    /// `xnat ARGS...` in `ns` for interface `iface`, not waiting.
    pub fn spawn(ns: &Netns, iface: &str, args: &[&str]) -> Agent {
        let xnat = Xnat::new(ns, iface);
        let mut cmd = xnat.cmd(xnat_bin());
        cmd.args(args);
        let what = format!("[{}] xnat {}", ns.name(), args.join(" "));
        Agent::spawn_cmd(what, &mut cmd, xnat)
    }

    /// An agent started by a command of the test's own (another mount
    /// namespace, a shell setting a umask, ...) that attaches
    /// `xnat.iface()`; `what` names it in messages. Not waiting.
    pub fn spawn_cmd(what: impl Into<String>, cmd: &mut Command, xnat: Xnat) -> Agent {
        Agent {
            child: BgChild::spawn(what, cmd),
            xnat,
            ready: None,
        }
    }

    /// Waits (up to [`READY_TIMEOUT`]) for the ready line `xnat: attached
    /// to IFACE` and returns it; panics with the output if the agent exits
    /// first.
    pub fn wait_ready(&mut self) -> String {
        let ready = format!("xnat: attached to {}", self.xnat.iface);
        let child = &mut self.child;
        let line = wait_for(READY_TIMEOUT, &format!("`{ready}` from the agent"), || {
            if let Some(s) = child.try_exit() {
                panic!(
                    "`{}` exited ({}) before it was ready\nstdout: {}\nstderr: {}",
                    child.what(),
                    describe(s),
                    child.stdout(),
                    child.stderr()
                );
            }
            child
                .stdout()
                .lines()
                .find(|l| l.starts_with(&ready))
                .map(str::to_string)
        });
        self.ready = Some(line.clone());
        line
    }

    /// The ready line (after [`Agent::wait_ready`]).
    pub fn ready_line(&self) -> &str {
        self.ready.as_deref().expect("the agent is not ready")
    }

    /// Panics unless the agent's programs are on its interface: tc (and
    /// XDP in XDP ingress `mode`).
    pub fn assert_programs(&self, ns: &Netns, mode: Ingress) {
        let a = attached(ns, &self.xnat.iface);
        assert!(
            !a.tc.is_empty() && (mode == Ingress::Tc || a.xdp),
            "agent ready in {} mode but programs missing on {}:\n{}",
            mode.as_str(),
            self.xnat.iface,
            a.raw
        );
    }

    /// Verbs against the agent's interface in its namespace.
    pub fn xnat(&self) -> &Xnat {
        &self.xnat
    }

    /// A counter of `xnat stats --json` by name.
    pub fn counter(&self, name: &str) -> u64 {
        self.xnat.counter(name)
    }

    /// SIGTERM; panics unless the agent exits 0 within [`EXIT_TIMEOUT`].
    /// Returns its (stdout, stderr).
    pub fn stop(mut self) -> (String, String) {
        let (st, killed) = self.child.terminate(EXIT_TIMEOUT);
        assert!(
            !killed && st.success(),
            "agent did not exit 0 on SIGTERM within {EXIT_TIMEOUT:?} ({}{})\nstdout: {}\nstderr: {}",
            describe(st),
            if killed { ", needed SIGKILL" } else { "" },
            self.child.stdout(),
            self.child.stderr()
        );
        (self.child.stdout(), self.child.stderr())
    }

    /// SIGKILL; reaps the agent and panics unless it died of that signal.
    pub fn kill9(mut self) {
        self.child.signal(libc::SIGKILL);
        let st = self.child.wait_exit(EXIT_TIMEOUT);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(libc::SIGKILL),
            "agent did not die of SIGKILL: {}",
            describe(st)
        );
    }

    /// Sends `sig` to the agent if it still runs.
    pub fn signal(&mut self, sig: libc::c_int) {
        self.child.signal(sig);
    }

    /// The exit status if the agent has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_exit()
    }

    /// Waits up to `timeout` for the agent to exit on its own; `None` if
    /// it still runs then.
    pub fn wait_exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.child.wait_exit_within(timeout)
    }

    /// Waits for the agent to exit on its own; after `timeout` kills it
    /// and panics with its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.child.wait_exit(timeout)
    }

    /// The agent's pid (`nsenter --net` execs the program without
    /// forking, so the child's pid is the agent's).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The agent's resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// What this agent is, for messages.
    pub fn what(&self) -> &str {
        self.child.what()
    }

    /// Everything the agent has written to stdout so far.
    pub fn stdout(&self) -> String {
        self.child.stdout()
    }

    /// Everything the agent has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.child.stderr()
    }

    /// Both, for messages.
    pub fn output(&self) -> String {
        format!("stdout: {}\nstderr: {}", self.stdout(), self.stderr())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_exit().is_none() {
            // A test that failed with the agent SIGSTOPped: let it run, so
            // it can act on the SIGTERM.
            self.child.signal(libc::SIGCONT);
            let (_, killed) = self.child.terminate(EXIT_TIMEOUT);
            if killed {
                eprintln!(
                    "note: `{}` did not exit within {EXIT_TIMEOUT:?} of SIGTERM; killed it",
                    self.child.what()
                );
            }
        }
    }
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
