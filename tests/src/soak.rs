//! The soak (issue 6): bounded churn of flows opening and closing through
//! the NAT for a given time, with timeouts short enough that bindings
//! expire within the run, then checks that the live bindings return to
//! zero and that the agent's memory (VmRSS) returns to within 10 % of what
//! it was after the warm-up. Driven by `cargo xtask soak --minutes M`
//! (binary `xnat-soak`) and, for about a minute, by tests/soak_short.rs.
//!
//! The churn: a UDP worker opens a fresh socket (a new ephemeral port, so
//! a new mapping) from one of three inside addresses, does one round trip
//! with an echo server and closes it, about [`UDP_PER_S`] times a second;
//! a TCP worker connects, exchanges 1 KiB and closes, about [`TCP_PER_S`]
//! times a second. Each worker has one flow open at a time, so what is
//! live at once is bounded by rate × timeout.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fault_topo::FaultTopo;
use crate::napt_topo::{HOST_A, HOST_B, HOST_C, SRV1, SRV2, sa, udp_bind};
use crate::netns::Netns;
use crate::topology::Ingress;
use crate::traffic::payload;

/// New UDP flows per second (target).
pub const UDP_PER_S: u32 = 100;
/// New TCP connections per second (target).
pub const TCP_PER_S: u32 = 20;
/// Idle timeouts of the soak's agent: short, so expiry runs all along.
const TIMEOUTS: &str = "udp=2,icmp=2,tcp-transitory=2,tcp-established=10";
/// The longest of them, plus sweep and margin: how long bindings may take
/// to drain at the end.
const DRAIN: Duration = Duration::from_secs(30);
/// Memory may end at most this much above its post-warm-up level.
const RSS_SLACK: f64 = 0.10;
/// At most one flow in this many may fail (after retries) on a loaded
/// machine; more means something is wrong.
const FAILURE_RATIO: u64 = 1000;

/// What the soak should do.
pub struct Options {
    pub duration: Duration,
    pub mode: Ingress,
    /// The topology's tag (≤ 4 alphanumerics).
    pub tag: String,
}

/// What the soak saw.
#[derive(Debug, Default)]
pub struct Report {
    pub duration_s: f64,
    pub warmup_s: f64,
    pub udp_flows: u64,
    pub tcp_flows: u64,
    pub failures: u64,
    /// What the first failures were (at most [`SAMPLES`]).
    pub failure_samples: Vec<String>,
    pub peak_mappings: u64,
    pub mappings_created: u64,
    pub expired_to_zero_s: f64,
    pub rss_after_warmup_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_end_kib: u64,
    /// Problems found, one line each; empty means the soak passed.
    pub problems: Vec<String>,
}

impl Report {
    pub fn to_json(&self) -> Value {
        json!({
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "udp_flows": self.udp_flows,
            "tcp_flows": self.tcp_flows,
            "failures": self.failures,
            "failure_samples": self.failure_samples,
            "peak_mappings": self.peak_mappings,
            "mappings_created": self.mappings_created,
            "expired_to_zero_s": self.expired_to_zero_s,
            "rss_after_warmup_kib": self.rss_after_warmup_kib,
            "rss_peak_kib": self.rss_peak_kib,
            "rss_end_kib": self.rss_end_kib,
            "problems": self.problems,
        })
    }
}

/// Counts of the workers.
#[derive(Default)]
struct Tally {
    udp: AtomicU64,
    tcp: AtomicU64,
    failures: AtomicU64,
    samples: std::sync::Mutex<Vec<String>>,
}

/// Failures described in the report.
const SAMPLES: usize = 10;

impl Tally {
    fn fail(&self, what: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut s = self.samples.lock().unwrap();
        if s.len() < SAMPLES {
            s.push(what);
        }
    }
}

/// Runs the soak; the report's `problems` say whether it passed.
pub fn run(opts: &Options) -> Report {
    let mut f = FaultTopo::new(&opts.tag, opts.mode);
    f.start(&[
        "--pool",
        "198.51.100.1",
        "--internal",
        "10.0.0.0/8",
        "--timeout",
        TIMEOUTS,
    ]);
    let pid = f.pid();
    // The memory measured must be the agent's, not a wrapper's.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "xnat", "pid {pid} is not the agent");
    let warmup = (opts.duration / 5).min(Duration::from_secs(30));
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    let mut r = Report {
        warmup_s: warmup.as_secs_f64(),
        ..Report::default()
    };
    let udp_server = udp_bind(&f.t.srv, sa(SRV1, 7000));
    let tcp_server =
        f.t.srv
            .in_ns(|| TcpListener::bind(sa(SRV2, 8000)))
            .expect("TCP listener");

    let started = Instant::now();
    // The servers stop only after the churn has: a flow in flight when
    // the churn stops still gets its answer.
    let servers_stop = AtomicBool::new(false);
    let stopped = std::thread::scope(|s| {
        s.spawn(|| udp_echo(&udp_server, &servers_stop));
        s.spawn(|| tcp_echo(&tcp_server, &servers_stop));
        let churn = [
            s.spawn(|| udp_churn(&f.t.a, &f.t.b, &stop, &tally)),
            s.spawn(|| tcp_churn(&f.t.a, &stop, &tally)),
        ];
        // The sampler: bounded by the duration; once a second.
        let mut warmed = false;
        while started.elapsed() < opts.duration {
            std::thread::sleep(Duration::from_secs(1));
            let rss = crate::agent::rss_kib(pid);
            r.rss_peak_kib = r.rss_peak_kib.max(rss);
            r.peak_mappings = r.peak_mappings.max(f.t.napt_stat("mappings"));
            if !warmed && started.elapsed() >= warmup {
                warmed = true;
                r.rss_after_warmup_kib = rss;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let stopped = Instant::now();
        for c in churn {
            c.join().expect("churn worker panicked");
        }
        servers_stop.store(true, Ordering::Relaxed);
        stopped
    });
    r.duration_s = (stopped - started).as_secs_f64();
    r.udp_flows = tally.udp.load(Ordering::Relaxed);
    r.tcp_flows = tally.tcp.load(Ordering::Relaxed);
    r.failures = tally.failures.load(Ordering::Relaxed);
    r.failure_samples = tally.samples.lock().unwrap().clone();

    // Drain: every binding expires, none is left behind (timed from the
    // moment the churn was told to stop).
    let mut last = (u64::MAX, u64::MAX);
    while stopped.elapsed() < DRAIN {
        last = (f.t.napt_stat("mappings"), f.t.napt_stat("sessions"));
        if last == (0, 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    r.expired_to_zero_s = stopped.elapsed().as_secs_f64();
    if last != (0, 0) {
        r.problems.push(format!(
            "{} mappings and {} sessions still live {DRAIN:?} after the churn stopped",
            last.0, last.1
        ));
    }
    r.mappings_created = f.t.counter("napt_mappings_created");
    r.rss_end_kib = crate::agent::rss_kib(pid);
    judge(&mut r, &mut f);
    if r.problems.is_empty() {
        f.stop();
    }
    r
}

/// Adds the problems the figures show to the report.
fn judge(r: &mut Report, f: &mut FaultTopo) {
    if let Some(s) = f.agent().try_exit() {
        r.problems.push(format!("the agent exited: {s:?}"));
    }
    let flows = r.udp_flows + r.tcp_flows;
    if flows == 0 {
        r.problems.push("no flow was opened".into());
    }
    if r.failures * FAILURE_RATIO > flows {
        r.problems.push(format!(
            "{} of {flows} flows failed (more than 1 in {FAILURE_RATIO})",
            r.failures
        ));
    }
    // The churn must have been churn: far more mappings made than ever
    // live at once, so expiry ran all along.
    if r.mappings_created < 2 * r.peak_mappings.max(1) {
        r.problems.push(format!(
            "only {} mappings made for a peak of {} live: no churn",
            r.mappings_created, r.peak_mappings
        ));
    }
    let limit = r.rss_after_warmup_kib as f64 * (1.0 + RSS_SLACK);
    if r.rss_end_kib as f64 > limit {
        r.problems.push(format!(
            "agent RSS {} KiB at the end, more than 10 % above {} KiB after warm-up",
            r.rss_end_kib, r.rss_after_warmup_kib
        ));
    }
}

/// Echoes every datagram until stopped.
fn udp_echo(sock: &UdpSocket, stop: &AtomicBool) {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    }
}

/// Accepts connections and echoes each until its client closes, one at a
/// time (the client has one open at a time too), until stopped.
fn tcp_echo(listener: &TcpListener, stop: &AtomicBool) {
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut w = &s;
                let _ = std::io::copy(&mut &s, &mut w);
                let _ = s.shutdown(Shutdown::Write);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Sleeps until `next`, then moves it on by `every` (the workers' pace).
fn pace(next: &mut Instant, every: Duration) {
    let now = Instant::now();
    if *next > now {
        std::thread::sleep(*next - now);
    }
    *next = (*next + every).max(now);
}

/// One UDP flow after another, from the three inside addresses in turn.
fn udp_churn(a: &Netns, b: &Netns, stop: &AtomicBool, tally: &Tally) {
    let hosts = [(a, HOST_A), (b, HOST_B), (b, HOST_C)];
    let to = sa(SRV1, 7000);
    let every = Duration::from_secs(1) / UDP_PER_S;
    let mut next = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        pace(&mut next, every);
        let (ns, ip) = hosts[(n % 3) as usize];
        n += 1;
        let sock = udp_bind(ns, sa(ip, 0));
        match udp_round_trip(&sock, to, &n.to_be_bytes()) {
            Ok(()) => {
                tally.udp.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tally.fail(format!("UDP from {:?}: {e}", sock.local_addr())),
        }
    }
}

/// Sends `msg` and waits for its echo; three tries of a second each.
fn udp_round_trip(sock: &UdpSocket, to: SocketAddrV4, msg: &[u8]) -> Result<(), String> {
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 64];
    let mut last = String::new();
    for _ in 0..3 {
        if let Err(e) = sock.send_to(msg, to) {
            last = format!("send: {e}");
            continue;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, _)) if &buf[..n] == msg => return Ok(()),
            Ok((n, from)) => last = format!("{n} other bytes from {from}"),
            Err(e) => last = format!("recv: {e}"),
        }
    }
    Err(format!("3 tries, last: {last}"))
}

/// One TCP connection after another from host A.
fn tcp_churn(a: &Netns, stop: &AtomicBool, tally: &Tally) {
    let to = sa(SRV2, 8000);
    let every = Duration::from_secs(1) / TCP_PER_S;
    let data = payload(1024, 0x33);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        pace(&mut next, every);
        let r = a
            .in_ns(|| TcpStream::connect_timeout(&to.into(), Duration::from_secs(5)))
            .and_then(|mut c| {
                let local = c.local_addr()?;
                let fail = |e: std::io::Error| std::io::Error::other(format!("{local}: {e}"));
                c.set_read_timeout(Some(Duration::from_secs(5)))?;
                c.write_all(&data).map_err(fail)?;
                c.shutdown(Shutdown::Write).map_err(fail)?;
                let mut got = Vec::new();
                c.read_to_end(&mut got).map_err(fail)?;
                if got != data {
                    return Err(std::io::Error::other(format!(
                        "{local}: {} bytes echoed, {} sent or different",
                        got.len(),
                        data.len()
                    )));
                }
                Ok(())
            });
        match r {
            Ok(()) => {
                tally.tcp.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tally.fail(format!("TCP: {e}")),
        }
    }
}
