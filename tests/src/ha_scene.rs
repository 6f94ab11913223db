//! One failover of the active/standby pair (tests/src/ha_topo.rs), in
//! steps a narrator can speak between: `xnat-ha demo` (`cargo xtask demo
//! --ha`) prints what each step shows, `xnat-ha bench` (`cargo xtask bench
//! --only failover`) only keeps the figures. The steps are those of
//! `failover::run` (the streams of tests/src/failover.rs through gw1, gw1
//! killed, every stream waited for through gw2), plus the router's view:
//! `ip monitor route` runs on the router, so the moment its route for the
//! pool left gw1 and the moment it pointed at gw2 are known too.
//!
//! [`Figures`] reads the outcome: the interruption per stream, when gw2
//! became VRRP master, when the route moved, what the server saw, and the
//! problems (a reset, bytes lost, a second public endpoint, a stream that
//! never resumed, ...): a failover with any problem is a failed one.
//!
//! A stream's interruption ends with the first progress after its longest
//! pause from the failure on, not with its first progress after the
//! failure: what was in flight through gw1 (a datagram, the segments in a
//! socket's queue) still arrives in the first milliseconds after gw1's
//! links go down, before anything can pass through gw2.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::failover::{Seen, Streams, endpoints, snapshot, unix_now};
use crate::ha_topo::{HaOptions, HaTopo, POOL, SERVER};
use crate::netns::BgChild;

/// The streams, by their index in `failover::snapshot` and `resumed`.
pub const STREAMS: [&str; 4] = [
    "TCP upload",
    "TCP download",
    "UDP at the server",
    "UDP echoes",
];

/// Longest the standby may take to carry every stream again: far above
/// what the timers allow (well under a second), so only a broken failover
/// hits it.
const RESUME_WITHIN: Duration = Duration::from_secs(30);

/// The pair, its streams and the router's route monitor.
pub struct Scene {
    pub topo: HaTopo,
    pub opts: HaOptions,
    /// Whether the TCP download runs (it needs binding sync).
    pub with_download: bool,
    streams: Option<Streams>,
    routes: Option<BgChild>,
}

/// The pair carrying the streams through gw1, before the failure.
pub struct Steady {
    /// gw1's `xnat flows --json`.
    pub gw1_flows: Value,
    /// gw2's, once it lists every one of gw1's mappings (binding sync;
    /// `Null` without it).
    pub gw2_learned: Value,
}

/// The failure and the recovery, timed from the failure.
pub struct Failover {
    pub t0: Instant,
    pub t0_unix: f64,
    /// When each stream moved again after its longest pause from the
    /// failure on (progress polled every 10 ms), in the order of
    /// [`STREAMS`].
    pub resumed: [Option<Duration>; 4],
    /// The router's route for the pool: gone from gw1, and via gw2.
    pub route_withdrawn: Option<Duration>,
    pub route_moved: Option<Duration>,
    /// What `ip monitor route` printed on the router after the failure.
    pub route_log: Vec<String>,
}

/// The streams stopped, what every side saw.
pub struct Ending {
    pub seen: Seen,
    /// gw2's `xnat flows`, as JSON and as text, while the streams still
    /// ran through it.
    pub gw2_flows: Value,
    pub gw2_flows_text: String,
    /// keepalived's notify log on gw2: (unix time, state).
    pub gw2_notified: Vec<(f64, String)>,
}

/// The end of the longest pause in `times` (sorted, each after `start`),
/// counting from `start`: when a stream that paused moved again.
pub fn after_longest_pause(start: Duration, times: &[Duration]) -> Option<Duration> {
    let mut prev = start;
    let mut best: Option<(Duration, Duration)> = None;
    for &t in times {
        let gap = t.saturating_sub(prev);
        if best.is_none_or(|(g, _)| gap > g) {
            best = Some((gap, t));
        }
        prev = t;
    }
    best.map(|(_, t)| t)
}

/// Whether a line of `ip monitor route` (or `ip route show`) is a route
/// for the pool through the router's link to gateway `n` (1 or 2).
fn pool_via(line: &str, n: usize) -> bool {
    line.contains(POOL) && line.contains(&format!(" dev gw{n}"))
}

impl Scene {
    /// Builds and starts the pair (`HaTopo::start`): returns once gw1 is
    /// master and the router routes the pool to it.
    pub fn start(tag: &str, opts: HaOptions, with_download: bool) -> Scene {
        let topo = HaTopo::start(tag, opts);
        Scene {
            topo,
            opts,
            with_download,
            streams: None,
            routes: None,
        }
    }

    /// Starts the streams and waits until each has moved data through gw1
    /// (and, with binding sync, until gw2 has learned every mapping).
    pub fn stream(&mut self) -> Steady {
        let with_download = self.with_download;
        let streams = Streams::start(&self.topo.cli, &self.topo.srv, SERVER, with_download);
        let p = streams.progress.clone();
        self.streams = Some(streams);
        crate::wait::wait_until(
            Duration::from_secs(60),
            "the streams to run through gw1",
            || {
                let [u, d, s, e] = snapshot(&p);
                u > 64 * 1024 && (!with_download || d > 64 * 1024) && s > 20 && e > 20
            },
        );
        let gw1_flows = self.topo.gw[0].flows();
        let want = endpoints(&gw1_flows);
        let gw2_learned = if self.opts.sync {
            crate::wait::wait_for(
                Duration::from_secs(30),
                "gw2 to learn gw1's bindings",
                || {
                    let f = self.topo.gw[1].flows();
                    let have = endpoints(&f);
                    want.iter().all(|w| have.contains(w)).then_some(f)
                },
            )
        } else {
            Value::Null
        };
        // The router's route changes from now on, as they happen.
        self.routes = Some(self.topo.rtr.spawn(&["ip", "monitor", "route"]));
        Steady {
            gw1_flows,
            gw2_learned,
        }
    }

    /// gw1 dies (`HaTopo::cut_links`, `HaTopo::kill`); waits (bounded) until every stream made
    /// progress again and the router routes the pool via gw2.
    pub fn fail_gw1(&mut self) -> Failover {
        let p = self
            .streams
            .as_ref()
            .expect("the streams run")
            .progress
            .clone();
        // `ip monitor` has printed nothing yet (the route is steady): what
        // it prints from here on is the failover's.
        let seen_before = self.routes.as_ref().map_or(0, |r| r.stdout().len());
        let t0_unix = unix_now();
        // The failure's moment is when gw1's links are down; its processes
        // are killed after that.
        let t0 = self.topo.cut_links(0);
        let at_fail = snapshot(&p);
        self.topo.kill(0);
        let mut f = Failover {
            t0,
            t0_unix,
            resumed: [None; 4],
            route_withdrawn: None,
            route_moved: None,
            route_log: Vec::new(),
        };
        let deadline = t0 + RESUME_WITHIN;
        // When each stream made progress, from the failure on.
        let mut moved: [Vec<Duration>; 4] = Default::default();
        let mut last = at_fail;
        let wanted = |i: usize| i != 1 || self.with_download;
        while Instant::now() < deadline {
            let now = snapshot(&p);
            let at = t0.elapsed();
            for i in 0..4 {
                if now[i] > last[i] {
                    moved[i].push(at);
                    last[i] = now[i];
                }
            }
            let log = self.routes.as_ref().map(|r| r.stdout()).unwrap_or_default();
            let new = log.get(seen_before..).unwrap_or("");
            for line in new.lines() {
                if f.route_withdrawn.is_none()
                    && ((line.starts_with("Deleted") && pool_via(line, 1)) || pool_via(line, 2))
                {
                    f.route_withdrawn = Some(at);
                }
                if f.route_moved.is_none() && !line.starts_with("Deleted") && pool_via(line, 2) {
                    f.route_moved = Some(at);
                }
            }
            // Done once gw2 carries everything: the route points at it
            // and every stream moved since.
            if let Some(r) = f.route_moved
                && (0..4).all(|i| !wanted(i) || moved[i].last().is_some_and(|&m| m > r))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for (i, m) in moved.iter().enumerate() {
            if wanted(i) {
                f.resumed[i] = after_longest_pause(Duration::ZERO, m);
            }
        }
        let log = self.routes.as_ref().map(|r| r.stdout()).unwrap_or_default();
        f.route_log = log
            .get(seen_before..)
            .unwrap_or("")
            .lines()
            .map(str::to_owned)
            .collect();
        f
    }

    /// A little more traffic through gw2 (bounded), gw2's flows, then the
    /// streams' orderly end (FINs) and what each side saw.
    pub fn finish(&mut self) -> Ending {
        let streams = self.streams.take().expect("the streams run");
        let p = streams.progress.clone();
        let more = snapshot(&p);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && snapshot(&p)[2] <= more[2] + 50 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let g2 = &self.topo.gw[1];
        let gw2_flows = g2.flows();
        let gw2_flows_text = g2.xnat(&["flows", "-i", &g2.ext]);
        let seen = streams.stop();
        self.routes = None;
        Ending {
            seen,
            gw2_flows,
            gw2_flows_text,
            gw2_notified: self.topo.notified(1),
        }
    }
}

/// The figures of one failover, and what went wrong in it.
#[derive(Debug, Clone)]
pub struct Figures {
    pub sync: bool,
    pub with_download: bool,
    /// From the failure to the first UDP datagram the server got through
    /// gw2, and to the first echo the client got (every datagram timed,
    /// not polled; what was in flight through gw1 not counted).
    pub udp_at_server: Option<Duration>,
    pub udp_echo: Option<Duration>,
    /// From the failure to the TCP streams' progress through gw2 (polled).
    pub upload: Option<Duration>,
    pub download: Option<Duration>,
    /// From the failure to gw2's notify script running for MASTER.
    pub gw2_master: Option<Duration>,
    /// From the failure to the router's route for the pool leaving gw1,
    /// and pointing at gw2.
    pub route_withdrawn: Option<Duration>,
    pub route_moved: Option<Duration>,
    /// The public endpoints the server saw: every UDP source, the TCP
    /// streams' peers.
    pub udp_sources: Vec<SocketAddr>,
    pub upload_peer: Option<SocketAddr>,
    pub download_peer: Option<SocketAddr>,
    /// Bytes sent / received per TCP stream.
    pub upload_bytes: (u64, u64),
    pub download_bytes: (u64, u64),
    /// The errors the TCP streams met (a reset is one).
    pub tcp_errors: Vec<String>,
    /// Everything that makes this failover a failed one.
    pub problems: Vec<String>,
}

/// A duration as seconds in JSON (null when it never happened).
fn secs(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_secs_f64()))
}

impl Figures {
    pub fn new(scene: &Scene, steady: &Steady, f: &Failover, end: &Ending) -> Figures {
        let s = &end.seen;
        let mut problems = Vec::new();
        let since = |ts: Vec<Instant>| -> Vec<Duration> {
            let mut v: Vec<Duration> = ts
                .into_iter()
                .filter(|&t| t > f.t0)
                .map(|t| t - f.t0)
                .collect();
            v.sort();
            v
        };
        let udp_at_server = after_longest_pause(
            Duration::ZERO,
            &since(s.udp.at_server.iter().map(|a| a.0).collect()),
        );
        let udp_echo = after_longest_pause(
            Duration::ZERO,
            &since(s.udp.echoed.iter().map(|a| a.0).collect()),
        );
        let gw2_master = end
            .gw2_notified
            .iter()
            .find(|(at, st)| st == "MASTER" && *at > f.t0_unix)
            .map(|(at, _)| Duration::from_secs_f64(at - f.t0_unix));
        let mut tcp_errors = Vec::new();
        let mut tcp = |name: &str, r: &crate::failover::TcpResult| {
            if let Some(e) = &r.error {
                tcp_errors.push(format!("{name}: {e}"));
                problems.push(format!("{name}: {e}"));
            } else if r.sent != r.received {
                problems.push(format!(
                    "{name}: {} bytes sent, {} received",
                    r.sent, r.received
                ));
            }
            if r.server_saw.is_none() {
                problems.push(format!("{name}: the server saw no connection"));
            }
        };
        tcp("TCP upload", &s.upload);
        if scene.with_download {
            tcp("TCP download", &s.download);
        }
        if let Some(e) = &s.udp.error {
            problems.push(format!("UDP: {e}"));
        }
        let udp_sources = s.udp.sources();
        if udp_sources.len() != 1 {
            problems.push(format!(
                "the server saw the UDP stream from {} public endpoints: {udp_sources:?}",
                udp_sources.len()
            ));
        }
        // The public endpoints the server saw are the ones gw1 had
        // made; gw2 carries them after the failover.
        let gw1 = endpoints(&steady.gw1_flows);
        let publics: Vec<String> = gw1.iter().map(|(_, _, p)| p.clone()).collect();
        for a in udp_sources
            .iter()
            .chain(s.upload.server_saw.iter())
            .chain(s.download.server_saw.iter())
        {
            if !publics.contains(&a.to_string()) {
                problems.push(format!(
                    "the server saw {a}, which is none of gw1's public endpoints {publics:?}"
                ));
            }
        }
        if scene.opts.sync {
            let learned = endpoints(&steady.gw2_learned);
            for e in &gw1 {
                if !learned.contains(e) {
                    problems.push(format!("gw2 had not learned {e:?} before the failure"));
                }
            }
        }
        let after = endpoints(&end.gw2_flows);
        for e in &gw1 {
            if !after.contains(e) {
                problems.push(format!("gw2 does not carry {e:?} after the failover"));
            }
        }
        for (i, r) in f.resumed.iter().enumerate() {
            if r.is_none() && (i != 1 || scene.with_download) {
                problems.push(format!(
                    "{} never resumed within {RESUME_WITHIN:?}",
                    STREAMS[i]
                ));
            }
        }
        if udp_at_server.is_none() || udp_echo.is_none() {
            problems.push("no UDP datagram or echo after the failure".into());
        }
        if gw2_master.is_none() {
            problems.push(format!(
                "gw2 never became VRRP master (its notify log: {:?})",
                end.gw2_notified
            ));
        }
        if f.route_moved.is_none() {
            problems.push(format!(
                "the router never routed the pool via gw2 (ip monitor route: {:?})",
                f.route_log
            ));
        }
        Figures {
            sync: scene.opts.sync,
            with_download: scene.with_download,
            udp_at_server,
            udp_echo,
            upload: f.resumed[0],
            download: f.resumed[1],
            gw2_master,
            route_withdrawn: f.route_withdrawn,
            route_moved: f.route_moved,
            udp_sources,
            upload_peer: s.upload.server_saw,
            download_peer: s.download.server_saw,
            upload_bytes: (s.upload.sent, s.upload.received),
            download_bytes: (s.download.sent, s.download.received),
            tcp_errors,
            problems,
        }
    }

    /// One public endpoint per stream throughout: one UDP source, and
    /// TCP streams that were neither reset nor lost a byte (a TCP peer
    /// that changed would have been both).
    pub fn kept_endpoints(&self) -> bool {
        let tcp_ok =
            |(sent, got): (u64, u64), peer: Option<SocketAddr>| sent == got && peer.is_some();
        self.udp_sources.len() == 1
            && tcp_ok(self.upload_bytes, self.upload_peer)
            && (!self.with_download || tcp_ok(self.download_bytes, self.download_peer))
    }

    /// Whether no TCP stream met an error (a reset is one).
    pub fn no_reset(&self) -> bool {
        self.tcp_errors.is_empty()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "sync": self.sync,
            "with_download": self.with_download,
            "udp_at_server_s": secs(self.udp_at_server),
            "udp_echo_s": secs(self.udp_echo),
            "tcp_upload_s": secs(self.upload),
            "tcp_download_s": secs(self.download),
            "gw2_master_s": secs(self.gw2_master),
            "route_withdrawn_s": secs(self.route_withdrawn),
            "route_moved_s": secs(self.route_moved),
            "udp_sources": self.udp_sources.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "tcp_upload_peer": self.upload_peer.map(|a| a.to_string()),
            "tcp_download_peer": self.download_peer.map(|a| a.to_string()),
            "tcp_upload_bytes": [self.upload_bytes.0, self.upload_bytes.1],
            "tcp_download_bytes": [self.download_bytes.0, self.download_bytes.1],
            "kept_endpoints": self.kept_endpoints(),
            "no_reset": self.no_reset(),
            "problems": self.problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn in_flight_arrivals_do_not_end_the_interruption() {
        let z = Duration::ZERO;
        // In flight through gw1 at 2 and 5 ms, then gw2 from 330 ms on.
        let t = ms(&[2, 5, 330, 340, 350]);
        assert_eq!(after_longest_pause(z, &t), Some(Duration::from_millis(330)));
        // Nothing in flight.
        let t = ms(&[310, 320]);
        assert_eq!(after_longest_pause(z, &t), Some(Duration::from_millis(310)));
        assert_eq!(after_longest_pause(z, &[]), None);
    }
}
