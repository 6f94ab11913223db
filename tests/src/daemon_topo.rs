//! Support for the daemon tests (tests/e2e_daemon.rs): the static-NAT
//! topology of [`crate::topology`] driven through config files, an agent
//! the test starts, kills and restarts itself, a long-lived TCP connection
//! that must survive all of it, and a Prometheus scrape with curl.
//!
//! Addresses (see `topology`): the inside host `cli` has 10.0.0.2 and
//! 10.0.0.3; the gateway's external interface EXT carries 203.0.113.1 and
//! 203.0.113.2; the server `srv` is 198.51.100.2. The configs here use
//! 203.0.113.2 as the NAPT pool and 203.0.113.1 for a static 1:1 map.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::agent::Agent;
use crate::netns::{BgChild, CMD_TIMEOUT, Netns, describe};
use crate::topology::{Ingress, Topology, pin_dir};
use crate::traffic::{IO_TIMEOUT, accept_within, payload};
use crate::wait::{SOON, wait_until};

/// The NAPT pool address of the configs.
pub const POOL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// Public address of the static map 10.0.0.3 = 203.0.113.1.
pub const STATIC_PUB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Where the agents serve metrics (inside the gateway's namespace).
pub const METRICS: &str = "127.0.0.1:9469";

/// A topology, a private directory for config files, and the agent.
pub struct DaemonTopo {
    pub t: Topology,
    pub dir: PathBuf,
}

impl DaemonTopo {
    /// Builds the topology for test `tag` (≤ 4 alphanumerics).
    pub fn new(tag: &str, mode: Ingress) -> DaemonTopo {
        let t = Topology::new(tag, mode);
        let dir = std::env::temp_dir().join(format!("xnat-e2e-{}-{}", std::process::id(), t.ext));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test's config directory");
        DaemonTopo { t, dir }
    }

    pub fn ext(&self) -> &str {
        &self.t.ext
    }

    /// Writes `text` to config file `name` and checks that `xnat check` and
    /// `xnat attach` both refuse it with exit 1 and one error line
    /// containing `expect`, and that the attach left nothing behind.
    pub fn assert_config_refused(&self, name: &str, text: &str, expect: &str) {
        let path = self.write(name, text);
        let path = path.to_str().unwrap();
        for verb in ["check", "attach"] {
            let out = self.xnat(&[verb, "--config", path]);
            let lines = crate::topology::error_lines(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "`xnat {verb} --config {name}`: {}\n{lines:?}",
                describe(out.status)
            );
            assert!(
                lines.len() == 1 && lines[0].contains(expect),
                "`xnat {verb} --config {name}`: expected one line containing {expect:?}, got {lines:?}"
            );
        }
        self.t
            .assert_clean(&format!("after `xnat attach --config {name}`"));
    }

    /// Writes `text` to `name` in the test's directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }

    /// A config for this topology: EXT, the test's ingress mode, NAPT of
    /// 10.0.0.0/24 behind [`POOL`], plus `extra` TOML (top-level keys
    /// first, then tables).
    pub fn config(&self, top: &str, tables: &str) -> String {
        format!(
            "interface = \"{ext}\"\ningress = \"{mode}\"\n{top}\n\n[napt]\ninternal = [\"10.0.0.0/24\"]\npool = [\"{POOL}\"]\n{tables}\n",
            ext = self.t.ext,
            mode = self.t.mode.as_str(),
        )
    }

    /// Starts `xnat ARGS` (an attach) in the gateway and waits until it is
    /// ready; returns its ready line.
    pub fn start(&mut self, args: &[&str]) -> String {
        assert!(self.t.agent.is_none(), "an agent is already running");
        let agent = Agent::start(&self.t.nat, &self.t.ext, args);
        let line = agent.ready_line().to_string();
        self.t.agent = Some(agent);
        line
    }

    /// The running agent.
    pub fn agent(&mut self) -> &mut Agent {
        self.t.agent()
    }

    /// Kills the agent with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        self.t.take_agent().kill9();
    }

    /// Stops the agent with SIGTERM; returns its output.
    pub fn stop(&mut self) -> (String, String) {
        self.t.take_agent().stop()
    }

    /// Runs `xnat ARGS` in the gateway, whatever the result.
    pub fn xnat(&self, args: &[&str]) -> Output {
        self.t.xnat(args)
    }

    /// Runs `xnat ARGS`; panics unless it succeeds; returns stdout.
    pub fn xnat_ok(&self, args: &[&str]) -> String {
        self.t.xnat_ok(args)
    }

    /// `xnat ARGS --json` (or with `--json` already in ARGS) as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.xnat_ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("`xnat {}` is not JSON ({e}): {out}", args.join(" ")))
    }

    /// The pin directory of EXT.
    pub fn pin_dir(&self) -> PathBuf {
        pin_dir(&self.t.ext)
    }

    /// GET `path` from the metrics endpoint with curl inside the gateway:
    /// (HTTP status, body).
    pub fn scrape(&self, path: &str) -> (u16, String) {
        let url = format!("http://{METRICS}{path}");
        // Generous: a render of half a million bindings on a loaded machine
        // takes seconds; the endpoint's own limits are what the tests see.
        let max_time = SOON.as_secs().to_string();
        let out = self.t.nat.run(
            SOON + CMD_TIMEOUT,
            &[
                "curl",
                "-sS",
                "--max-time",
                &max_time,
                "-w",
                "\n%{http_code}",
                &url,
            ],
        );
        assert!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("curl -w adds the status");
        (code.trim().parse().expect("HTTP status"), body.to_string())
    }
}

impl Drop for DaemonTopo {
    fn drop(&mut self) {
        // The agent first (SIGTERM: it detaches), then the topology.
        self.t.agent = None;
        let _ = std::fs::remove_dir_all(&self.dir);
        // Pid and state files a killed agent left (named after EXT).
        if let Ok(rd) = std::fs::read_dir("/run/xnat") {
            let prefix = format!("{}@", self.t.ext);
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// The value of the sample `name{labels}` (labels as written by the
/// exposition, e.g. `direction="egress"`; `""` for none) in `text`.
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        if n != name || !labels.iter().all(|lab| rest.contains(lab)) {
            return None;
        }
        value.parse().ok()
    })
}

/// A TCP connection from an inside host to the server that stays open
/// across agent restarts and reloads; every [`LongFlow::check`] sends data
/// and checks the echo, proving the connection still works.
pub struct LongFlow {
    client: TcpStream,
    /// The client's address as the server saw it at accept.
    pub seen_by_server: SocketAddr,
    echo: Option<JoinHandle<()>>,
    round: u8,
}

impl LongFlow {
    /// Listens on `srv` in `server`, connects from `client_ns` (from its
    /// primary address), and starts echoing.
    pub fn open(client_ns: &Netns, server: &Netns, srv: SocketAddr) -> LongFlow {
        let listener = server
            .in_ns(|| TcpListener::bind(srv))
            .unwrap_or_else(|e| panic!("bind {srv}: {e}"));
        let client = client_ns
            .in_ns(|| TcpStream::connect_timeout(&srv, IO_TIMEOUT))
            .unwrap_or_else(|e| panic!("connect to {srv}: {e}"));
        let (server_side, seen_by_server) = accept_within(&listener, IO_TIMEOUT);
        for s in [&client, &server_side] {
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        }
        let echo = std::thread::spawn(move || {
            let mut r = server_side.try_clone().unwrap();
            let mut w = server_side;
            let _ = std::io::copy(&mut r, &mut w);
        });
        LongFlow {
            client,
            seen_by_server,
            echo: Some(echo),
            round: 0,
        }
    }

    /// Sends 64 KiB and reads them back; panics, naming `when`, if the
    /// connection broke.
    pub fn check(&mut self, when: &str) {
        self.round = self.round.wrapping_add(1);
        let data = payload(64 * 1024, self.round);
        self.client
            .write_all(&data)
            .unwrap_or_else(|e| panic!("{when}: TCP write on the long-lived flow: {e}"));
        let mut got = vec![0u8; data.len()];
        self.client
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("{when}: TCP echo on the long-lived flow broke: {e}"));
        assert!(got == data, "{when}: echoed data differs");
    }
}

impl Drop for LongFlow {
    fn drop(&mut self) {
        let _ = self.client.shutdown(std::net::Shutdown::Both);
        if let Some(h) = self.echo.take() {
            let _ = h.join();
        }
    }
}

/// Waits until `path` has a line for which `f` holds.
pub fn wait_for_line(
    path: &Path,
    what: &str,
    timeout: Duration,
    f: impl Fn(&serde_json::Value) -> bool,
) {
    let found = || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| f(&v))
    };
    let deadline = std::time::Instant::now() + timeout;
    while !found() {
        // The log as it stands, so a timeout says what was written instead.
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; {} holds:\n{}",
            path.display(),
            std::fs::read_to_string(path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The complete JSON lines of `path`. A last line without its newline is
/// one the agent is still writing, not a bad line: it is left for later.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Where the IPFIX tests' collector listens (in the gateway's namespace).
pub const COLLECTOR: &str = "127.0.0.1:4739";

/// nfdump's IPFIX collector `nfcapd`, in the gateway's namespace on
/// [`COLLECTOR`], writing under the test's directory.
pub struct Nfcapd {
    child: BgChild,
    data: PathBuf,
}

impl Nfcapd {
    /// Starts it and waits until it listens.
    pub fn start(d: &DaemonTopo) -> Nfcapd {
        let data = d.dir.join("nfcapd");
        std::fs::create_dir_all(&data).unwrap();
        let (addr, port) = COLLECTOR.split_once(':').unwrap();
        let child = d.t.nat.spawn(&[
            "nfcapd",
            "-p",
            port,
            "-b",
            addr,
            "-w",
            data.to_str().unwrap(),
        ]);
        let n = Nfcapd { child, data };
        wait_until(SOON, "nfcapd to listen", || n.unread(d).is_some());
        n
    }

    /// Bytes its socket holds unread (`None`: not listening).
    fn unread(&self, d: &DaemonTopo) -> Option<u64> {
        let out = d.t.nat.run_ok(&["ss", "-H", "-uln", "src", COLLECTOR]);
        out.split_whitespace().nth(1).and_then(|q| q.parse().ok())
    }

    /// Waits until it has read every message, stops it and returns what
    /// `nfdump -o json` decodes from its files: the text and the records.
    pub fn records(mut self, d: &DaemonTopo) -> (String, Vec<serde_json::Value>) {
        wait_until(SOON, "nfcapd to read every message", || {
            self.unread(d) == Some(0)
        });
        self.child.signal(libc::SIGTERM);
        let status = self.child.wait_exit(SOON);
        assert!(status.success(), "nfcapd: {}", describe(status));
        let out =
            d.t.nat
                .run_ok(&["nfdump", "-R", self.data.to_str().unwrap(), "-o", "json"]);
        let records =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("nfdump's JSON ({e}):\n{out}"));
        (out, records)
    }
}
