//! The end-to-end topology for static 1:1 NAT:
//!
//! ```text
//!  cli                nat                          rtr                         srv
//!  eth0 10.0.0.2/24 ─ int0 10.0.0.1/24
//!  (+10.0.0.3/24)     EXT  192.0.2.1/24        ─  eth0 192.0.2.2/24
//!                          203.0.113.1/32          eth1 198.51.100.1/24    ─  eth0 198.51.100.2/24
//!                          203.0.113.2/32
//! ```
//!
//! `nat` runs `xnat attach EXT`. `rtr` routes 203.0.113.0/24 *and* 10.0.0.0/8
//! back to the gateway, so plain routing without translation works too (the
//! tests use that to see that detach and `map del` restore it). `nat` ignores
//! pings addressed to itself, so a ping to a public address can only succeed
//! when it is translated to the inside host.
//!
//! EXT is not literally `ext0`: every topology gets a unique external
//! interface name (`x` + pid in base 36 + test tag + mode letter), so the pin
//! directory under /sys/fs/bpf/xnat that belongs to a test is known by name
//! (xnat names it `IFACE@ns<netns inode>`; inode numbers are reused once a
//! namespace is gone, names with our pid are not).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use aya::programs::{SchedClassifier, TcAttachType};
use serde_json::Value;

use crate::agent::{Agent, Xnat};
use crate::net::Net;
use crate::netns::{BgChild, CMD_TIMEOUT, Netns, describe, host};
use crate::wait::wait_until;

/// Client's address (mapped to [`PUB1`] at attach).
pub const CLI: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Second client address (on the same interface; not mapped at attach).
pub const CLI2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
/// The gateway's inside address.
pub const GW_INT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The gateway's own outside address.
pub const GW_EXT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Public address of [`CLI`].
pub const PUB1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Public address handed to [`CLI2`] by `map add`.
pub const PUB2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The router's address facing the gateway.
pub const RTR_EXT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The router's address facing the server.
pub const RTR_SRV: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The server.
pub const SRV: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// The static mapping every topology attaches with.
pub const STATIC_MAP: &str = "10.0.0.2=203.0.113.1";

/// Where xnat pins its state.
pub const PIN_ROOT: &str = "/sys/fs/bpf/xnat";

/// Ingress mode of the external interface (`xnat attach --ingress`); the
/// harness binaries' `--ingress tc|xdp` parse into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Ingress {
    Xdp,
    Tc,
}

impl Ingress {
    /// The `--ingress` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Ingress::Xdp => "xdp",
            Ingress::Tc => "tc",
        }
    }
}

/// What is attached to an interface, as `ip` and `bpftool` see it.
#[derive(Debug)]
pub struct Attached {
    /// An XDP program (any mode) is attached.
    pub xdp: bool,
    /// `bpftool net show` lines of the tc section for the interface
    /// (clsact or tcx programs).
    pub tc: Vec<String>,
    /// The raw outputs, for messages.
    pub raw: String,
}

impl Attached {
    /// Nothing at all is attached.
    pub fn is_empty(&self) -> bool {
        !self.xdp && self.tc.is_empty()
    }
}

/// The network of the diagram above (see [`crate::net`]).
const NET: &str = "
    hosts cli nat rtr srv
    link cli:eth0 nat:int0
    link nat:EXT rtr:eth0
    link rtr:eth1 srv:eth0
    addr cli:eth0 10.0.0.2/24 10.0.0.3/24
    addr nat:int0 10.0.0.1/24
    addr nat:EXT 192.0.2.1/24 203.0.113.1/32 203.0.113.2/32
    addr rtr:eth0 192.0.2.2/24
    addr rtr:eth1 198.51.100.1/24
    addr srv:eth0 198.51.100.2/24
    route cli default via 10.0.0.1
    route nat default via 192.0.2.2
    # Plain routing works without translation too (detach, `map del`).
    route rtr 203.0.113.0/24 via 192.0.2.1
    route rtr 10.0.0.0/8 via 192.0.2.1
    route srv default via 198.51.100.1
    sysctl net.ipv4.ip_forward=1 nat rtr
    # The gateway must never answer pings to the public addresses itself,
    # or a ping test could pass without any translation.
    sysctl net.ipv4.icmp_echo_ignore_all=1 nat
";

/// All four namespaces, their links and addresses, plus the background
/// children of a test. Dropping it stops the children (the agent with
/// SIGTERM, so it detaches) and deletes the namespaces, also when the test
/// panicked.
pub struct Topology {
    pub mode: Ingress,
    /// The NAT's external interface (in `nat`).
    pub ext: String,
    pub cli: Netns,
    pub nat: Netns,
    pub rtr: Netns,
    pub srv: Netns,
    pub(crate) agent: Option<Agent>,
    bg: Vec<BgChild>,
}

/// The pid in base 36: short enough for interface names.
pub fn pid36() -> String {
    let mut n = std::process::id();
    let mut s = Vec::new();
    loop {
        s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

impl Topology {
    /// Builds the topology for test `tag` (≤ 4 characters, unique among the
    /// tests of the binary) in ingress `mode`, without attaching xnat.
    pub fn new(tag: &str, mode: Ingress) -> Topology {
        let mut net = Net::build("xt", "x", tag, mode, NET);
        Topology {
            mode,
            ext: net.ext.clone(),
            cli: net.take("cli"),
            nat: net.take("nat"),
            rtr: net.take("rtr"),
            srv: net.take("srv"),
            agent: None,
            bg: Vec::new(),
        }
    }

    /// [`Topology::new`] plus `xnat attach EXT --map 10.0.0.2=203.0.113.1`.
    pub fn with_static_nat(tag: &str, mode: Ingress) -> Topology {
        let mut t = Topology::new(tag, mode);
        t.attach(&["--map", STATIC_MAP]);
        t
    }

    /// Starts `xnat attach EXT --ingress MODE ARGS...` in `nat` in the
    /// background and waits until it is ready.
    pub fn attach(&mut self, args: &[&str]) {
        assert!(self.agent.is_none(), "agent already running");
        let agent = Agent::attach(&self.nat, &self.ext, self.mode, args);
        agent.assert_programs(&self.nat, self.mode);
        self.agent = Some(agent);
    }

    /// Spawns `xnat attach IFACE --ingress MODE ARGS...` in `nat` (not waiting).
    pub fn spawn_attach(&self, iface: &str, args: &[&str]) -> Agent {
        Agent::spawn_attach(&self.nat, iface, self.mode, args)
    }

    /// The running agent.
    pub fn agent(&mut self) -> &mut Agent {
        self.agent.as_mut().expect("no agent attached")
    }

    /// Takes the agent out of the topology (e.g. to wait for its exit).
    pub fn take_agent(&mut self) -> Agent {
        self.agent.take().expect("no agent attached")
    }

    /// Stops the agent with SIGTERM and checks it detached cleanly: exit 0,
    /// no programs left on EXT, no pins left.
    pub fn stop_agent(&mut self) {
        self.take_agent().stop();
        self.assert_clean("after the agent exited on SIGTERM");
    }

    /// Panics unless EXT has no program attached and no pin mentions it.
    pub fn assert_clean(&self, when: &str) {
        let a = self.attached();
        assert!(
            a.is_empty(),
            "{when}: programs still attached to {}:\n{}",
            self.ext,
            a.raw
        );
        let pins = self.pins();
        assert!(
            pins.is_empty(),
            "{when}: pins left for {}: {pins:?}",
            self.ext
        );
    }

    /// Keeps a background child alive until the topology is dropped.
    pub fn keep(&mut self, child: BgChild) {
        self.bg.push(child);
    }

    /// `xnat` verbs in `nat` about EXT.
    pub fn verbs(&self) -> Xnat {
        Xnat::new(&self.nat, &self.ext)
    }

    /// Runs `xnat ARGS` in `nat`, whatever the result.
    pub fn xnat(&self, args: &[&str]) -> Output {
        self.verbs().run(args)
    }

    /// Runs `xnat ARGS` in `nat`; panics unless it succeeds; returns stdout.
    pub fn xnat_ok(&self, args: &[&str]) -> String {
        self.verbs().run_ok(args)
    }

    /// `xnat map list -i EXT --json` as (private, public) pairs, sorted.
    pub fn map_list(&self) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        let v = self.verbs().on_json(&["map", "list", "--json"]);
        let arr = v
            .as_array()
            .unwrap_or_else(|| panic!("`xnat map list --json` is not an array: {v}"));
        let addr = |e: &Value, k: &str| -> Ipv4Addr {
            e.get(k)
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("map list entry without an IPv4 {k:?}: {e}"))
        };
        let mut pairs: Vec<_> = arr
            .iter()
            .map(|e| (addr(e, "private"), addr(e, "public")))
            .collect();
        pairs.sort();
        pairs
    }

    /// `xnat stats -i EXT --json`.
    pub fn stats(&self) -> Value {
        self.verbs().stats()
    }

    /// One counter of `xnat stats --json` by name; panics if absent.
    pub fn counter(&self, name: &str) -> u64 {
        self.verbs().counter(name)
    }

    /// What is attached to EXT (`ip -d link show`, `bpftool net show dev`).
    pub fn attached(&self) -> Attached {
        attached(&self.nat, &self.ext)
    }

    /// Paths under [`PIN_ROOT`] that belong to EXT.
    pub fn pins(&self) -> Vec<PathBuf> {
        pins_for(&self.ext)
    }

    /// Starts tcpdump in `ns` on `iface`, capturing `count` packets matching
    /// `filter`, and waits until it is listening. The child is returned (and
    /// not kept) so the test can wait for its exit and read its output.
    pub fn tcpdump(ns: &Netns, iface: &str, count: u32, filter: &str) -> BgChild {
        let count = count.to_string();
        let mut dump = ns.spawn(&[
            "tcpdump",
            "-n",
            "-l",
            "--immediate-mode",
            "-i",
            iface,
            "-c",
            &count,
            filter,
        ]);
        wait_until(Duration::from_secs(10), "tcpdump to listen", || {
            if let Some(s) = dump.try_exit() {
                panic!("tcpdump exited ({}) early: {}", describe(s), dump.stderr());
            }
            dump.stderr().contains("listening on")
        });
        dump
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Children first (the agent gets SIGTERM and detaches), then pins
        // that a misbehaving agent may have left, then (field drops) the
        // namespaces.
        self.bg.clear();
        self.agent = None;
        remove_stale_pins(&self.ext);
    }
}

/// What is attached to `iface` in `ns`: XDP from `ip -d link` and
/// `bpftool net`, tc programs from `bpftool net` (netlink clsact filters),
/// `tc filter show` and a TCX query (`BPF_PROG_QUERY` through aya, run in
/// the namespace: the bpftool here, v7.1, does not list TCX attachments).
pub fn attached(ns: &Netns, iface: &str) -> Attached {
    let link = ns.ip(&["-d", "link", "show", "dev", iface]);
    let net = ns.run_ok(&["bpftool", "net", "show", "dev", iface]);
    let mut xdp = link.split_whitespace().any(|w| {
        matches!(w, "xdp" | "xdpgeneric" | "xdpdrv" | "xdpoffload") || w.starts_with("prog/xdp")
    });
    let mut tc = Vec::new();
    let mut section = "";
    let prefix = format!("{iface}(");
    for line in net.lines() {
        let l = line.trim();
        if l.ends_with(':') && !l.contains(' ') {
            section = l.trim_end_matches(':');
        } else if l.starts_with(&prefix) {
            match section {
                "xdp" => xdp = true,
                "tc" => tc.push(format!("bpftool: {l}")),
                _ => {}
            }
        }
    }
    let mut raw =
        format!("$ ip -d link show dev {iface}\n{link}$ bpftool net show dev {iface}\n{net}");
    for dir in ["ingress", "egress"] {
        // Fails harmlessly (no output) when there is no clsact qdisc.
        let out = ns.run(CMD_TIMEOUT, &["tc", "filter", "show", "dev", iface, dir]);
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        raw.push_str(&format!("$ tc filter show dev {iface} {dir}\n{out}"));
        tc.extend(
            out.lines()
                .filter(|l| l.contains(" bpf "))
                .map(|l| format!("tc {dir}: {}", l.trim())),
        );
    }
    let iface_owned = iface.to_string();
    let tcx =
        ns.in_ns(move || {
            let mut v = Vec::new();
            for (label, at) in [
                ("tcx/ingress", TcAttachType::Ingress),
                ("tcx/egress", TcAttachType::Egress),
            ] {
                match SchedClassifier::query_tcx(&iface_owned, at) {
                    Ok((_, progs)) => v.extend(progs.iter().map(|p| {
                        format!("{label}: {} id {}", p.name_as_str().unwrap_or("?"), p.id())
                    })),
                    Err(e) => panic!("TCX query of {iface_owned} {label}: {e}"),
                }
            }
            v
        });
    raw.push_str(&format!("TCX query: {tcx:?}\n"));
    tc.extend(tcx);
    Attached { xdp, tc, raw }
}

/// Paths under [`PIN_ROOT`] with a component that contains `iface`: each
/// matching entry and everything below it (a bounded walk), sorted, so a
/// directory comes before its contents.
pub fn pins_for(iface: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, iface: &str, matched: bool, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let m = matched || e.file_name().to_string_lossy().contains(iface);
            if m {
                out.push(p.clone());
            }
            if depth > 1 && e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, iface, m, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new(PIN_ROOT), iface, false, 6, &mut out);
    out.sort();
    out
}

/// The pin directory of interface `ext` (`PIN_ROOT/EXT@ns<inode>`).
pub fn pin_dir(ext: &str) -> PathBuf {
    let prefix = format!("{ext}@");
    std::fs::read_dir(PIN_ROOT)
        .expect("reading the pin root")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no pin directory for {ext} under {PIN_ROOT}"))
}

/// Finds counter `name` in `xnat stats --json` output of any reasonable
/// shape: `{"name": 3}`, nested objects, or `[{"name": "...", "value": 3}]`.
pub fn json_counter(v: &Value, name: &str) -> Option<u64> {
    match v {
        Value::Object(m) => {
            if let Some(n) = m.get(name).and_then(Value::as_u64) {
                return Some(n);
            }
            if m.get("name").and_then(Value::as_str) == Some(name) {
                for k in ["value", "count", "packets", "total"] {
                    if let Some(n) = m.get(k).and_then(Value::as_u64) {
                        return Some(n);
                    }
                }
            }
            m.values().find_map(|x| json_counter(x, name))
        }
        Value::Array(a) => a.iter().find_map(|x| json_counter(x, name)),
        _ => None,
    }
}

/// The lines of a command's stderr that carry a message (trimmed, blank
/// lines and clap's "For more information, try '--help'." hint dropped).
pub fn error_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information, try"))
        .map(str::to_string)
        .collect()
}

/// A veth pair created straight into two namespaces: `an` in `a`, `bn` in
/// `b` (interface names can repeat across namespaces).
pub fn veth(a: &Netns, an: &str, b: &Netns, bn: &str) {
    host(&[
        "ip",
        "link",
        "add",
        an,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        bn,
        "netns",
        b.name(),
    ]);
}

/// Removes pins a killed earlier run left for interface `ext` (a
/// namespace inode can be reused, so the path may reappear).
pub fn remove_stale_pins(ext: &str) {
    for p in pins_for(ext) {
        // Sorted: a directory comes first and takes its contents along.
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        if let Err(e) = r
            && p.exists()
        {
            eprintln!("warning: cannot remove stale pin {}: {e}", p.display());
        }
    }
}
