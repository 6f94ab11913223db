//! Traffic that must survive a gateway failover (tests/e2e_failover.rs,
//! the failover benchmark, `cargo xtask demo --ha`): a TCP upload (the
//! inside host speaks), a TCP download (the server speaks: after a
//! failover its segments reach the new gateway first) and a UDP stream
//! echoed by the server, each on its own thread with every blocking call
//! bounded. What each side saw is kept with the time it saw it, so the
//! interruption and the public endpoints can be read afterwards.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::traffic::accept_within;

/// Server ports of [`Streams::start`]: UDP, upload, download from here.
const BASE_PORT: u16 = 5000;
/// One write; the streams are paced to about 1 MB/s each so a loaded
/// 2-CPU machine keeps BFD's and VRRP's timers.
const CHUNK: usize = 8192;
const PACE: Duration = Duration::from_millis(8);
/// UDP datagram period.
const UDP_PERIOD: Duration = Duration::from_millis(10);
/// Longest a blocked read or write may wait: longer than any failover the
/// tests allow, so a stall shows as missing progress, not an error.
const STALL: Duration = Duration::from_secs(60);

/// A TCP stream's result: bytes each side counted, the peer the server
/// saw, the error either side met (a reset is one).
#[derive(Debug, Default, Clone)]
pub struct TcpResult {
    pub sent: u64,
    pub received: u64,
    pub server_saw: Option<SocketAddr>,
    pub error: Option<String>,
}

/// What the UDP stream saw: the server's arrivals (time, sequence,
/// source) and the client's echoes (time, sequence).
#[derive(Debug, Default, Clone)]
pub struct UdpResult {
    pub at_server: Vec<(Instant, u32, SocketAddr)>,
    pub echoed: Vec<(Instant, u32)>,
    pub error: Option<String>,
}

impl UdpResult {
    /// The public endpoints the server saw, in order of first use.
    pub fn sources(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = Vec::new();
        for (_, _, s) in &self.at_server {
            if !v.contains(s) {
                v.push(*s);
            }
        }
        v
    }

    /// Datagrams the server never got between the first and the last it
    /// got.
    pub fn lost(&self) -> usize {
        let mut seqs: Vec<u32> = self.at_server.iter().map(|a| a.1).collect();
        seqs.sort_unstable();
        seqs.dedup();
        match (seqs.first(), seqs.last()) {
            (Some(&a), Some(&b)) => (b - a + 1) as usize - seqs.len(),
            _ => 0,
        }
    }

    /// How long after `t0` the stream came back: the end of the longest
    /// silence that ends after `t0`, at the server and at the client (a
    /// datagram already on the wire at `t0` does not count as resumed).
    pub fn resumed_after(&self, t0: Instant) -> (Option<Duration>, Option<Duration>) {
        let back = |ts: Vec<Instant>| {
            ts.windows(2)
                .filter(|w| w[1] > t0)
                .max_by_key(|w| w[1] - w[0])
                .map(|w| w[1] - t0)
        };
        (
            back(self.at_server.iter().map(|a| a.0).collect()),
            back(self.echoed.iter().map(|a| a.0).collect()),
        )
    }
}

/// Progress counters the test polls while the streams run: bytes the
/// receiving side got, datagrams each side got.
#[derive(Default)]
pub struct Progress {
    pub uploaded: AtomicU64,
    pub downloaded: AtomicU64,
    /// Bytes the senders wrote (upload: the client; download: the server).
    pub upload_sent: AtomicU64,
    pub download_sent: AtomicU64,
    pub udp_at_server: AtomicU64,
    pub udp_echoed: AtomicU64,
}

/// The three streams, running.
pub struct Streams {
    stop: Arc<AtomicBool>,
    pub progress: Arc<Progress>,
    upload: Vec<JoinHandle<TcpResult>>,
    download: Vec<JoinHandle<TcpResult>>,
    udp: Vec<JoinHandle<UdpResult>>,
}

/// What the streams saw, once stopped.
#[derive(Debug)]
pub struct Seen {
    pub upload: TcpResult,
    pub download: TcpResult,
    pub udp: UdpResult,
}

fn paced_write(s: &mut TcpStream, stop: &AtomicBool, count: &AtomicU64) -> Result<u64, String> {
    let buf = vec![0x5au8; CHUNK];
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        s.write_all(&buf).map_err(|e| format!("write: {e}"))?;
        sent += CHUNK as u64;
        count.store(sent, Ordering::Relaxed);
        std::thread::sleep(PACE);
    }
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    Ok(sent)
}

fn read_all(s: &mut TcpStream, count: Option<&AtomicU64>) -> Result<u64, String> {
    let mut buf = vec![0u8; 65536];
    let mut got = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => {
                got += n as u64;
                if let Some(c) = count {
                    c.store(got, Ordering::Relaxed);
                }
            }
            Err(e) => return Err(format!("read after {got} bytes: {e}")),
        }
    }
}

fn timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(STALL)).unwrap();
    s.set_write_timeout(Some(STALL)).unwrap();
}

impl Streams {
    /// Starts the servers in `srv` (listening on `server`) and the clients
    /// in `cli` (the download only `with_download`); the clients take
    /// ephemeral ports.
    pub fn start(cli: &Netns, srv: &Netns, server: Ipv4Addr, with_download: bool) -> Streams {
        Streams::start_on(cli, srv, server, with_download, BASE_PORT)
    }

    /// [`Streams::start`] with the server's ports from `base` (UDP `base`,
    /// upload `base + 1`, download `base + 2`), for several clients at once.
    pub fn start_on(
        cli: &Netns,
        srv: &Netns,
        server: Ipv4Addr,
        with_download: bool,
        base: u16,
    ) -> Streams {
        let (udp_port, upload_port, download_port) = (base, base + 1, base + 2);
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let up_l = srv
            .in_ns(|| TcpListener::bind((server, upload_port)))
            .expect("listening for the upload");
        let down_l = with_download.then(|| {
            srv.in_ns(|| TcpListener::bind((server, download_port)))
                .expect("listening for the download")
        });
        let udp_s = srv
            .in_ns(|| UdpSocket::bind((server, udp_port)))
            .expect("binding the UDP server");
        let up_c = cli
            .in_ns(|| {
                TcpStream::connect_timeout(&(server, upload_port).into(), Duration::from_secs(30))
            })
            .expect("connecting the upload");
        let down_c = with_download.then(|| {
            cli.in_ns(|| {
                TcpStream::connect_timeout(&(server, download_port).into(), Duration::from_secs(30))
            })
            .expect("connecting the download")
        });
        let udp_c = cli
            .in_ns(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
            .expect("binding the UDP client");

        let mut upload = Vec::new();
        // Upload: the client writes, the server counts.
        {
            let (stop, p) = (stop.clone(), progress.clone());
            upload.push(std::thread::spawn(move || {
                let mut s = up_c;
                timeouts(&s);
                let mut r = TcpResult::default();
                match paced_write(&mut s, &stop, &p.upload_sent) {
                    Ok(n) => r.sent = n,
                    Err(e) => r.error = Some(format!("upload client: {e}")),
                }
                // The server closes after our FIN: wait for it.
                if r.error.is_none()
                    && let Err(e) = read_all(&mut s, None)
                {
                    r.error = Some(format!("upload client: {e}"));
                }
                r
            }));
            let p = progress.clone();
            upload.push(std::thread::spawn(move || {
                let (mut s, peer) = accept_within(&up_l, Duration::from_secs(30));
                timeouts(&s);
                let mut r = TcpResult {
                    server_saw: Some(peer),
                    ..TcpResult::default()
                };
                match read_all(&mut s, Some(&p.uploaded)) {
                    Ok(n) => r.received = n,
                    Err(e) => r.error = Some(format!("upload server: {e}")),
                }
                r
            }));
        }
        let mut download = Vec::new();
        // Download: the server writes, the client counts.
        if let (Some(down_l), Some(down_c)) = (down_l, down_c) {
            let (stop, p) = (stop.clone(), progress.clone());
            download.push(std::thread::spawn(move || {
                let (mut s, peer) = accept_within(&down_l, Duration::from_secs(30));
                timeouts(&s);
                let mut r = TcpResult {
                    server_saw: Some(peer),
                    ..TcpResult::default()
                };
                match paced_write(&mut s, &stop, &p.download_sent) {
                    Ok(n) => r.sent = n,
                    Err(e) => r.error = Some(format!("download server: {e}")),
                }
                r
            }));
            let p = progress.clone();
            download.push(std::thread::spawn(move || {
                let mut s = down_c;
                timeouts(&s);
                let mut r = TcpResult::default();
                match read_all(&mut s, Some(&p.downloaded)) {
                    Ok(n) => r.received = n,
                    Err(e) => r.error = Some(format!("download client: {e}")),
                }
                r
            }));
        }
        let mut udp = Vec::new();
        {
            let (stop, p) = (stop.clone(), progress.clone());
            udp.push(std::thread::spawn(move || {
                let mut r = UdpResult::default();
                udp_s
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let mut buf = [0u8; 64];
                let mut idle_since_stop = 0;
                // Bounded: after the stop, a few idle timeouts end it.
                while idle_since_stop < 5 {
                    match udp_s.recv_from(&mut buf) {
                        Ok((4, from)) => {
                            let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
                            r.at_server.push((Instant::now(), seq, from));
                            p.udp_at_server.fetch_add(1, Ordering::Relaxed);
                            let _ = udp_s.send_to(&buf[..4], from);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            if stop.load(Ordering::Relaxed) {
                                idle_since_stop += 1;
                            }
                        }
                    }
                }
                r
            }));
        }
        {
            let (stop, p) = (stop.clone(), progress.clone());
            udp.push(std::thread::spawn(move || {
                let mut r = UdpResult::default();
                udp_c
                    .set_read_timeout(Some(Duration::from_millis(1)))
                    .unwrap();
                let mut buf = [0u8; 64];
                let mut seq = 0u32;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        // Sends may fail while no route or neighbour is
                        // there (the failover): the stream goes on.
                        let _ = udp_c.send_to(&seq.to_be_bytes(), (server, udp_port));
                        seq += 1;
                        next += UDP_PERIOD;
                    }
                    if let Ok((4, _)) = udp_c.recv_from(&mut buf) {
                        let s = u32::from_be_bytes(buf[..4].try_into().unwrap());
                        r.echoed.push((Instant::now(), s));
                        p.udp_echoed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                r
            }));
        }
        Streams {
            stop,
            progress,
            upload,
            download,
            udp,
        }
    }

    /// Stops the senders and collects what both sides saw (the TCP
    /// streams end with FINs, which the receivers wait for).
    pub fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let join_tcp = |v: Vec<JoinHandle<TcpResult>>| {
            let mut out = TcpResult::default();
            let mut errors = Vec::new();
            for h in v {
                let r = h.join().expect("a stream thread panicked");
                out.sent += r.sent;
                out.received += r.received;
                out.server_saw = out.server_saw.or(r.server_saw);
                errors.extend(r.error);
            }
            if !errors.is_empty() {
                out.error = Some(errors.join("; "));
            }
            out
        };
        let upload = join_tcp(self.upload);
        let download = join_tcp(self.download);
        let mut udp = UdpResult::default();
        for h in self.udp {
            let r = h.join().expect("a UDP thread panicked");
            udp.at_server.extend(r.at_server);
            udp.echoed.extend(r.echoed);
        }
        Seen {
            upload,
            download,
            udp,
        }
    }
}

/// Shared bookkeeping for tests that poll progress: a snapshot.
pub fn snapshot(p: &Progress) -> [u64; 4] {
    [
        p.uploaded.load(Ordering::Relaxed),
        p.downloaded.load(Ordering::Relaxed),
        p.udp_at_server.load(Ordering::Relaxed),
        p.udp_echoed.load(Ordering::Relaxed),
    ]
}

/// One failover as the test, the benchmark and the demo run it.
pub struct Outcome {
    pub seen: Seen,
    /// When gw1 died.
    pub t0: Instant,
    /// gw1's flows just before, gw2's peer-learned ones then, gw2's after.
    pub gw1_before: serde_json::Value,
    pub gw2_learned: serde_json::Value,
    pub gw2_after: serde_json::Value,
    /// From the failure to the first progress each stream made after it
    /// (upload, download, UDP at the server, UDP echoed), polled.
    pub resumed: [Option<Duration>; 4],
    /// gw2's notify log (unix time, state) and the failure's unix time.
    pub gw2_notified: Vec<(f64, String)>,
    pub t0_unix: f64,
    pub with_download: bool,
}

/// Waits (bounded) until every stream of `p` has moved some data.
pub fn wait_steady(p: &Progress, with_download: bool, what: &str) {
    crate::wait::wait_until(Duration::from_secs(60), what, || {
        let [u, d, s, e] = snapshot(p);
        u > 64 * 1024 && (!with_download || d > 64 * 1024) && s > 20 && e > 20
    });
}

/// Where the streams stood when a gateway died: what the receivers had,
/// what the senders had written.
pub struct AtFailure {
    got: [u64; 4],
    sent: [u64; 2],
}

impl AtFailure {
    pub fn of(p: &Progress) -> AtFailure {
        AtFailure {
            got: snapshot(p),
            sent: [
                p.upload_sent.load(Ordering::Relaxed),
                p.download_sent.load(Ordering::Relaxed),
            ],
        }
    }

    /// Which streams have resumed: the receiver has bytes the sender wrote
    /// after the failure (they cannot have passed the dead gateway), or a
    /// few datagrams more.
    fn resumed(&self, p: &Progress) -> [bool; 4] {
        let now = snapshot(p);
        let past = [self.sent[0], self.sent[1], self.got[2] + 5, self.got[3] + 5];
        [0, 1, 2, 3].map(|i| now[i] > past[i])
    }
}

/// Polls (bounded: 60 s) until every stream of `p` has resumed since
/// `at`; when each did, measured from `t0`.
pub fn wait_resumed(
    p: &Progress,
    at: &AtFailure,
    t0: Instant,
    with_download: bool,
) -> [Option<Duration>; 4] {
    let mut resumed = [None; 4];
    let deadline = Instant::now() + Duration::from_secs(60);
    // Bounded: the deadline ends it; the caller then reports what stalled.
    while Instant::now() < deadline {
        for (i, r) in at.resumed(p).into_iter().enumerate() {
            if r && resumed[i].is_none() {
                resumed[i] = Some(t0.elapsed());
            }
        }
        let done = resumed
            .iter()
            .enumerate()
            .all(|(i, r)| r.is_some() || (i == 1 && !with_download));
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    resumed
}

/// Waits (bounded) for 50 more datagrams of `p`'s UDP stream.
pub fn wait_more(p: &Progress) {
    let more = snapshot(p);
    crate::wait::wait_until(
        Duration::from_secs(30),
        "more traffic after the failover",
        || snapshot(p)[2] > more[2] + 50,
    );
}

/// Seconds since the epoch, to compare with the notify logs.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// gw1 dies while the streams of `p` run through it: its links go down
/// (t0), then its processes are killed; waits (bounded) until every stream
/// resumed and a little more traffic passed. The failure's wall-clock
/// time (for the notify logs), t0, and when each stream resumed.
fn fail_gw1(
    t: &mut crate::ha_topo::HaTopo,
    p: &Progress,
    with_download: bool,
) -> (f64, Instant, [Option<Duration>; 4]) {
    let t0_unix = unix_now();
    let t0 = t.cut_links(0);
    let at = AtFailure::of(p);
    t.kill(0);
    let resumed = wait_resumed(p, &at, t0, with_download);
    if resumed[2].is_some() {
        wait_more(p);
    }
    (t0_unix, t0, resumed)
}

/// Runs the pair (`opts`), the streams through gw1, fails gw1 while they
/// run and waits (bounded) until every stream made progress through gw2.
pub fn run(
    tag: &str,
    opts: crate::ha_topo::HaOptions,
    with_download: bool,
) -> (crate::ha_topo::HaTopo, Outcome) {
    use crate::ha_topo::{HaTopo, SERVER};
    let mut t = HaTopo::start(tag, opts);
    let streams = Streams::start(&t.cli, &t.srv, SERVER, with_download);
    let p = streams.progress.clone();
    wait_steady(&p, with_download, "the streams to run through gw1");
    let gw1_before = t.gw[0].flows();
    let flows = gw1_before.as_array().map_or(0, Vec::len);
    let expected = if with_download { 3 } else { 2 };
    assert!(flows >= expected, "gw1 shows {flows} flow(s): {gw1_before}");
    let gw2_learned = if opts.sync {
        // The standby learned every flow's mapping before the failure.
        wait_for_learned(&t, 1, &gw1_before)
    } else {
        serde_json::Value::Null
    };
    let (t0_unix, t0, resumed) = fail_gw1(&mut t, &p, with_download);
    let gw2_after = t.gw[1].flows();
    let seen = streams.stop();
    let gw2_notified = t.notified(1);
    (
        t,
        Outcome {
            seen,
            t0,
            gw1_before,
            gw2_learned,
            gw2_after,
            resumed,
            gw2_notified,
            t0_unix,
            with_download,
        },
    )
}

/// The public endpoints of `xnat flows --json` rows: (proto, inside,
/// public) as the rows spell them.
pub fn endpoints(flows: &serde_json::Value) -> Vec<(String, String, String)> {
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or("").to_string();
    flows
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| (field(r, "proto"), field(r, "inside"), field(r, "public")))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until gateway `i` lists a mapping for every flow of `flows`
/// (another gateway's), with the same public endpoint; returns its flows.
pub fn wait_for_learned(
    t: &crate::ha_topo::HaTopo,
    i: usize,
    flows: &serde_json::Value,
) -> serde_json::Value {
    let want: Vec<(String, String, String)> = endpoints(flows);
    let what = format!("gw{} to learn the other gateway's bindings", i + 1);
    crate::wait::wait_for(Duration::from_secs(30), &what, || {
        let f = t.gw[i].flows();
        let have = endpoints(&f);
        want.iter().all(|w| have.contains(w)).then_some(f)
    })
}

/// What an N+1 failover ([`run_n_plus_1`]) did.
pub struct NPlusOneOutcome {
    /// The failed slice's streams (its gateway died) and the surviving
    /// slice's.
    pub failed: Seen,
    pub surviving: Seen,
    pub t0: Instant,
    pub t0_unix: f64,
    /// When each of the failed slice's streams resumed (as [`Outcome`]).
    pub resumed: [Option<Duration>; 4],
    /// Flows: gw1's before the failure, gw3's after.
    pub gw1_before: serde_json::Value,
    pub gw3_after: serde_json::Value,
}

impl NPlusOneOutcome {
    /// The surviving slice's longest silence at the server while the
    /// other slice failed over (its datagrams come every 10 ms).
    pub fn surviving_longest_silence(&self) -> Duration {
        let ts: Vec<Instant> = self.surviving.udp.at_server.iter().map(|a| a.0).collect();
        ts.windows(2)
            .filter(|w| w[1] > self.t0)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }
}

/// N+1 ([`crate::ha_topo::Plan::n_plus_1`]): streams from a host of each
/// slice (upload, download, UDP), gw1 — the first slice's master — dies
/// while they run; waits (bounded) until the first slice's streams
/// resumed through the backup gw3, runs both a moment more and stops them.
pub fn run_n_plus_1(tag: &str) -> (crate::ha_topo::HaTopo, NPlusOneOutcome) {
    use crate::ha_topo::{HaOptions, HaTopo, Plan, SERVER};
    let mut t = HaTopo::start_plan(tag, Plan::n_plus_1(), HaOptions::default());
    let a = Streams::start_on(&t.cli, &t.srv, SERVER, true, 5000);
    let b = Streams::start_on(&t.more_clients[0], &t.srv, SERVER, true, 6000);
    let (pa, pb) = (a.progress.clone(), b.progress.clone());
    wait_steady(&pa, true, "the first slice's streams to run through gw1");
    wait_steady(&pb, true, "the second slice's streams to run through gw2");
    let (gw1_before, gw2_before) = (t.gw[0].flows(), t.gw[1].flows());
    // The backup learned both slices' mappings.
    wait_for_learned(&t, 2, &gw1_before);
    wait_for_learned(&t, 2, &gw2_before);
    let (t0_unix, t0, resumed) = fail_gw1(&mut t, &pa, true);
    wait_more(&pb);
    let gw3_after = t.gw[2].flows();
    let (failed, surviving) = (a.stop(), b.stop());
    (
        t,
        NPlusOneOutcome {
            failed,
            surviving,
            t0,
            t0_unix,
            resumed,
            gw1_before,
            gw3_after,
        },
    )
}
