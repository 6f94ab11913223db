//! Steady UDP load through the NAT for the fault tests: many flows, each a
//! socket in an inside namespace sending numbered datagrams to an echo
//! server beyond the NAT, which answers every one to the source it saw.
//! Both sides record what they saw, so a test can check, around a fault,
//! that every flow kept working, kept its one public endpoint, and that no
//! datagram arrived from a source it should not have (a private address,
//! another flow's endpoint, a wrong payload).

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::wait::wait_until;

/// First bytes of every load datagram (tells them from anything else).
const MAGIC: u32 = 0x786e_6174;
/// No load runs longer than this, whatever the test does.
const MAX_RUN: Duration = Duration::from_secs(600);

/// What both sides have seen so far.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Per flow: datagrams sent by the client.
    pub sent: Vec<u64>,
    /// Per flow: datagrams the server received.
    pub at_server: Vec<u64>,
    /// Per flow: echoes the client received.
    pub echoed: Vec<u64>,
    /// Per flow: the public endpoints the server saw the flow from.
    pub public: Vec<BTreeSet<SocketAddrV4>>,
    /// Per flow: the sources its echoes came from.
    pub echo_from: Vec<BTreeSet<SocketAddrV4>>,
    /// Everything that should not have happened, one line each.
    pub anomalies: Vec<String>,
}

impl Seen {
    fn new(flows: usize) -> Seen {
        Seen {
            sent: vec![0; flows],
            at_server: vec![0; flows],
            echoed: vec![0; flows],
            public: vec![BTreeSet::new(); flows],
            echo_from: vec![BTreeSet::new(); flows],
            anomalies: Vec::new(),
        }
    }

    /// Panics unless nothing odd was seen, every flow was seen from exactly
    /// one public endpoint, no two flows shared one, and every echo came
    /// from `server` (the address the clients sent to): no flow lost its
    /// binding and none was translated as another.
    pub fn assert_consistent(&self, when: &str, server: SocketAddrV4) {
        for (i, e) in self.echo_from.iter().enumerate() {
            assert!(
                e.iter().all(|a| *a == server),
                "{when}: flow {i} got echoes from {e:?}, not only {server}"
            );
        }
        assert!(
            self.anomalies.is_empty(),
            "{when}: {} anomalies, first ones:\n{}",
            self.anomalies.len(),
            self.anomalies[..self.anomalies.len().min(20)].join("\n")
        );
        let mut all = BTreeSet::new();
        for (i, p) in self.public.iter().enumerate() {
            assert_eq!(
                p.len(),
                1,
                "{when}: flow {i} was seen from {} public endpoints: {p:?}",
                p.len()
            );
            let e = *p.iter().next().unwrap();
            assert!(all.insert(e), "{when}: two flows share public endpoint {e}");
        }
    }

    /// Each flow's one public endpoint (see [`Seen::assert_consistent`]).
    pub fn endpoints(&self) -> Vec<SocketAddrV4> {
        self.public
            .iter()
            .map(|p| *p.iter().next().expect("flow never reached the server"))
            .collect()
    }
}

/// A running load; stops (and joins its threads) when dropped.
pub struct UdpLoad {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<JoinHandle<()>>,
}

fn encode(flow: u32, seq: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&MAGIC.to_be_bytes());
    b[4..8].copy_from_slice(&flow.to_be_bytes());
    b[8..].copy_from_slice(&seq.to_be_bytes());
    b
}

fn decode(b: &[u8]) -> Option<(u32, u64)> {
    if b.len() != 16 || b[..4] != MAGIC.to_be_bytes() {
        return None;
    }
    Some((
        u32::from_be_bytes(b[4..8].try_into().unwrap()),
        u64::from_be_bytes(b[8..].try_into().unwrap()),
    ))
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => panic!("unexpected IPv6 address {a}"),
    }
}

impl UdpLoad {
    /// Starts the load: every socket of `clients` (bound in an inside
    /// namespace) sends one datagram per `pace` to `to`, where `server`
    /// (bound to `to` in the server's namespace) echoes it. The server
    /// accepts sources in `public_ips` only (the pool): anything else is an
    /// anomaly.
    pub fn start(
        clients: Vec<UdpSocket>,
        server: UdpSocket,
        to: SocketAddrV4,
        public_ips: &[Ipv4Addr],
        pace: Duration,
    ) -> UdpLoad {
        let n = clients.len();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::new(n)));
        let public_ips = public_ips.to_vec();
        let mut threads = Vec::new();
        {
            let (stop, seen) = (stop.clone(), seen.clone());
            threads.push(std::thread::spawn(move || {
                serve(&server, &public_ips, &stop, &seen)
            }));
        }
        {
            let (stop, seen) = (stop.clone(), seen.clone());
            threads.push(std::thread::spawn(move || {
                drive(&clients, to, pace, &stop, &seen)
            }));
        }
        UdpLoad {
            stop,
            seen,
            threads,
        }
    }

    /// What has been seen so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until every flow got an echo more than it had in `before`:
    /// each one works end to end now.
    pub fn wait_all_echo(&self, before: &Seen, timeout: Duration, what: &str) {
        wait_until(timeout, what, || {
            let s = self.seen.lock().unwrap();
            s.echoed.iter().zip(&before.echoed).all(|(now, b)| now > b)
        });
    }

    /// Stops the load and returns everything seen.
    pub fn stop(mut self) -> Seen {
        self.halt();
        self.seen()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            if let Err(e) = t.join() {
                std::panic::resume_unwind(e);
            }
        }
    }
}

impl Drop for UdpLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The echo server: records and answers every datagram until stopped.
fn serve(sock: &UdpSocket, public_ips: &[Ipv4Addr], stop: &AtomicBool, seen: &Mutex<Seen>) {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) && started.elapsed() < MAX_RUN {
        let (len, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => panic!("load server recv: {e}"),
        };
        let from = v4(from);
        let mut s = seen.lock().unwrap();
        let Some((flow, _)) = decode(&buf[..len]).filter(|(f, _)| (*f as usize) < s.sent.len())
        else {
            s.anomalies
                .push(format!("server: {len} unknown bytes from {from}"));
            continue;
        };
        if !public_ips.contains(from.ip()) {
            s.anomalies.push(format!(
                "server: flow {flow} arrived from {from}, not a pool address"
            ));
        }
        s.at_server[flow as usize] += 1;
        s.public[flow as usize].insert(from);
        drop(s);
        // The echo may be lost (e.g. while a link is down); the client
        // only counts what comes back.
        let _ = sock.send_to(&buf[..len], from);
    }
}

/// The clients: one datagram per flow per round, then every answer that
/// has arrived, until stopped.
fn drive(
    socks: &[UdpSocket],
    to: SocketAddrV4,
    pace: Duration,
    stop: &AtomicBool,
    seen: &Mutex<Seen>,
) {
    for s in socks {
        s.set_nonblocking(true).unwrap();
    }
    let started = Instant::now();
    let mut seq = 0u64;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) && started.elapsed() < MAX_RUN {
        seq += 1;
        for (i, s) in socks.iter().enumerate() {
            // A send may fail while the path is broken (that is the fault
            // under test); only what arrives counts.
            if s.send_to(&encode(i as u32, seq), to).is_ok() {
                seen.lock().unwrap().sent[i] += 1;
            }
        }
        // Pacing, not synchronisation: the load's rate.
        std::thread::sleep(pace);
        for (i, s) in socks.iter().enumerate() {
            // Bounded: a socket's receive queue holds a few hundred at most.
            for _ in 0..1000 {
                match s.recv_from(&mut buf) {
                    Ok((len, from)) => {
                        let mut st = seen.lock().unwrap();
                        match decode(&buf[..len]) {
                            Some((f, _)) if f as usize == i => {
                                st.echoed[i] += 1;
                                st.echo_from[i].insert(v4(from));
                            }
                            _ => st.anomalies.push(format!(
                                "client {i}: {len} bytes from {from} that are not its echo"
                            )),
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }
}
