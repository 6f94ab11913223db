//! The inside half of the flood scenario: new flows opened while the flood
//! runs, one every so often, whatever became of the earlier ones.
//!
//! A flow is one UDP round trip between an inside socket and a server
//! endpoint that socket has not talked to before: a new *session* of an
//! existing mapping. That is what competes with the flood for the session
//! table (`--max-sessions`), as sessions opened from outside do; a flow
//! from a new socket would make a new mapping, which holds its first
//! session itself and needs no slot. So each inside socket gets its mapping
//! before the flood ([`InsideFlows::open_mappings`]), and every flow after
//! that is a session beyond the first.
//!
//! One thread drives it all with `poll`: it sends each new flow's datagram
//! on schedule, resends one that got no echo within the try timeout, echoes
//! at the server sockets whatever arrives, and takes the echoes at the
//! inside sockets.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::napt_topo::{
    HOST_A, HOST_B, HOST_C, NaptTopo, SRV1, SRV2, SRV3, sa, udp_bind, udp_deliver, v4,
};

/// The inside sockets' port (one socket per inside address).
const CLIENT_PORT: u16 = 40800;
/// Server port of the first flow; flow `i` talks to port `FLOW_PORT + i`.
const FLOW_PORT: u16 = 20000;
/// Server port each inside socket opens its mapping with.
const MAPPING_PORT: u16 = 19000;
/// Flows one run may open (server ports `FLOW_PORT..`).
pub const MAX_FLOWS: usize = 20000;
/// Failures described in a [`FlowTally`], at most.
const FAILURE_SAMPLES: usize = 10;
const SERVERS: [Ipv4Addr; 3] = [SRV1, SRV2, SRV3];

/// How the inside opens its flows.
#[derive(Clone, Copy, Debug)]
pub struct FlowPlan {
    /// How many flows.
    pub flows: usize,
    /// One new flow this often (on a fixed schedule from the first).
    pub every: Duration,
    /// Datagrams a flow may send before it counts as failed.
    pub tries: u32,
    /// How long each try waits for its echo.
    pub try_timeout: Duration,
}

/// What became of the flows.
#[derive(Clone, Debug, Default)]
pub struct FlowTally {
    pub total: usize,
    /// Echo back from the right endpoint, at any try.
    pub ok: usize,
    /// ... at the first try.
    pub ok_first_try: usize,
    /// Round-trip times of the successful tries, ms, sorted.
    pub rtt_ms: Vec<f64>,
    /// From the first flow's datagram to the last flow's outcome.
    pub secs: f64,
    /// The first few failures, one line each.
    pub failures: Vec<String>,
}

impl FlowTally {
    /// Successes in per cent (100 for no flows).
    pub fn ok_pct(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            100.0 * self.ok as f64 / self.total as f64
        }
    }

    /// The `q` quantile (0..=1) of the round-trip times, ms.
    pub fn rtt_quantile(&self, q: f64) -> Option<f64> {
        let n = self.rtt_ms.len();
        (n > 0).then(|| self.rtt_ms[((n - 1) as f64 * q).round() as usize])
    }
}

/// The inside sockets, the server endpoints of the flows, and what the
/// servers must see as the flows' source address (the pool address).
pub struct InsideFlows {
    clients: Vec<UdpSocket>,
    servers: Vec<(SocketAddrV4, UdpSocket)>,
    public: Ipv4Addr,
}

/// Where a flow stands.
#[derive(Clone, Debug)]
enum State {
    /// Not sent yet.
    Planned,
    /// `tries` datagrams sent, the last at `last`.
    Waiting {
        tries: u32,
        last: Instant,
    },
    Ok,
    Failed(String),
}

/// The server endpoint of flow `i`.
fn endpoint(i: usize) -> SocketAddrV4 {
    sa(SERVERS[i % SERVERS.len()], FLOW_PORT + i as u16)
}

impl InsideFlows {
    /// Binds one socket on each inside host address (A in `a`, B and C in
    /// `b`) and a server socket for each of `flows` flows (in `srv`).
    pub fn bind(t: &NaptTopo, flows: usize, public: Ipv4Addr) -> InsideFlows {
        assert!(flows <= MAX_FLOWS, "{flows} flows: at most {MAX_FLOWS}");
        let clients = vec![
            udp_bind(&t.a, sa(HOST_A, CLIENT_PORT)),
            udp_bind(&t.b, sa(HOST_B, CLIENT_PORT)),
            udp_bind(&t.b, sa(HOST_C, CLIENT_PORT)),
        ];
        let servers = t.srv.in_ns(|| {
            (0..flows)
                .map(|i| {
                    let ep = endpoint(i);
                    let s = UdpSocket::bind(ep)
                        .unwrap_or_else(|e| panic!("bind UDP {ep} in the server namespace: {e}"));
                    (ep, s)
                })
                .collect::<Vec<_>>()
        });
        for s in clients.iter().chain(servers.iter().map(|(_, s)| s)) {
            s.set_nonblocking(true).expect("a non-blocking UDP socket");
        }
        InsideFlows {
            clients,
            servers,
            public,
        }
    }

    /// Gives each inside socket its mapping (with its first session) by one
    /// delivered datagram to a server endpoint of its own, so that every
    /// flow of [`InsideFlows::run`] is a session beyond a mapping's first.
    pub fn open_mappings(&self, t: &NaptTopo) {
        for (k, c) in self.clients.iter().enumerate() {
            let ep = sa(SERVERS[k % SERVERS.len()], MAPPING_PORT);
            let srv = udp_bind(&t.srv, ep);
            c.set_nonblocking(false).unwrap();
            udp_deliver(c, ep, &srv, b"open the mapping");
            c.set_nonblocking(true).unwrap();
        }
    }

    /// Opens the flows of `plan` and waits for each to succeed or fail.
    pub fn run(&self, plan: &FlowPlan) -> FlowTally {
        assert!(
            plan.flows <= self.servers.len(),
            "{} flows planned, {} server endpoints bound",
            plan.flows,
            self.servers.len()
        );
        let mut state = vec![State::Planned; plan.flows];
        let mut sent_at: Vec<Vec<Instant>> = vec![Vec::new(); plan.flows];
        let mut server_saw: Vec<Option<SocketAddrV4>> = vec![None; plan.flows];
        let mut tally = FlowTally {
            total: plan.flows,
            ..FlowTally::default()
        };
        let mut fds: Vec<libc::pollfd> = self
            .clients
            .iter()
            .chain(self.servers.iter().map(|(_, s)| s))
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let start = Instant::now();
        let mut next = 0;
        let mut buf = [0u8; 256];
        loop {
            let now = Instant::now();
            // New flows on schedule (late ones at once).
            while next < plan.flows && now >= start + plan.every * next as u32 {
                self.send(next, 0, &mut state, &mut sent_at);
                next += 1;
            }
            // Resends and give-ups.
            let mut wake = (next < plan.flows).then(|| start + plan.every * next as u32);
            let mut waiting = 0;
            for i in 0..next {
                if let State::Waiting { tries, last } = state[i] {
                    if now < last + plan.try_timeout {
                        waiting += 1;
                        let due = last + plan.try_timeout;
                        wake = Some(wake.map_or(due, |w| w.min(due)));
                    } else if tries < plan.tries {
                        self.send(i, tries, &mut state, &mut sent_at);
                        waiting += 1;
                    } else {
                        state[i] = State::Failed(match server_saw[i] {
                            None => format!(
                                "flow {i} to {}: no echo after {tries} tries; the server got nothing",
                                endpoint(i)
                            ),
                            Some(from) => format!(
                                "flow {i} to {}: no echo after {tries} tries; the server saw {from}, \
                                 its echo never came back",
                                endpoint(i)
                            ),
                        });
                    }
                }
            }
            if next == plan.flows && waiting == 0 {
                break;
            }
            let timeout = wake.map_or(Duration::ZERO, |w| w.saturating_duration_since(now));
            poll(&mut fds, timeout.min(Duration::from_millis(10)));
            for (k, pfd) in fds.iter().enumerate() {
                if pfd.revents == 0 {
                    continue;
                }
                if k < self.clients.len() {
                    self.take_echoes(k, &mut buf, &mut state, &sent_at, &mut tally);
                } else {
                    let j = k - self.clients.len();
                    self.echo(j, &mut buf, &mut server_saw, &mut state);
                }
            }
        }
        tally.secs = start.elapsed().as_secs_f64();
        for s in &state {
            match s {
                State::Ok => tally.ok += 1,
                State::Failed(why) if tally.failures.len() < FAILURE_SAMPLES => {
                    tally.failures.push(why.clone())
                }
                _ => {}
            }
        }
        tally.rtt_ms.sort_by(f64::total_cmp);
        tally
    }

    /// The inside socket of flow `i`.
    fn client(&self, i: usize) -> &UdpSocket {
        &self.clients[i % self.clients.len()]
    }

    /// Sends try `t` of flow `i`.
    fn send(&self, i: usize, t: u32, state: &mut [State], sent_at: &mut [Vec<Instant>]) {
        let msg = format!("flow {i} try {t}");
        let now = Instant::now();
        match self.client(i).send_to(msg.as_bytes(), endpoint(i)) {
            Ok(_) => {
                sent_at[i].push(now);
                state[i] = State::Waiting {
                    tries: t + 1,
                    last: now,
                };
            }
            Err(e) => state[i] = State::Failed(format!("flow {i}: send to {}: {e}", endpoint(i))),
        }
    }

    /// Echoes whatever server socket `j` holds back to its source, and
    /// notes the source (which must be the public address).
    fn echo(
        &self,
        j: usize,
        buf: &mut [u8],
        server_saw: &mut [Option<SocketAddrV4>],
        state: &mut [State],
    ) {
        let (ep, s) = &self.servers[j];
        while let Some((n, from)) = recv(s, buf) {
            if j >= state.len() {
                continue; // an endpoint no flow of this run uses
            }
            let from = v4(from);
            server_saw[j] = Some(from);
            if *from.ip() != self.public {
                state[j] = State::Failed(format!(
                    "flow {j}: the server {ep} saw it from {from}, not from the public address {}",
                    self.public
                ));
                continue;
            }
            // A lost echo is the flow's to retry.
            let _ = s.send_to(&buf[..n], from);
        }
    }

    /// Takes the echoes that inside socket `k` holds.
    fn take_echoes(
        &self,
        k: usize,
        buf: &mut [u8],
        state: &mut [State],
        sent_at: &[Vec<Instant>],
        tally: &mut FlowTally,
    ) {
        let now = Instant::now();
        while let Some((n, from)) = recv(&self.clients[k], buf) {
            let Some((i, t)) = parse(&buf[..n]) else {
                continue;
            };
            if i >= state.len() || !matches!(state[i], State::Waiting { .. }) {
                continue; // a late copy of an echo already counted
            }
            if v4(from) != endpoint(i) || i % self.clients.len() != k {
                state[i] = State::Failed(format!(
                    "flow {i}: the echo came from {from} to inside socket {k}, expected {} to {}",
                    endpoint(i),
                    i % self.clients.len()
                ));
                continue;
            }
            if let Some(at) = sent_at[i].get(t as usize) {
                tally.rtt_ms.push((now - *at).as_secs_f64() * 1e3);
            }
            if t == 0 {
                tally.ok_first_try += 1;
            }
            state[i] = State::Ok;
        }
    }
}

/// `flow I try T` -> (I, T).
fn parse(msg: &[u8]) -> Option<(usize, u32)> {
    let s = std::str::from_utf8(msg).ok()?;
    let mut w = s.split_whitespace();
    (w.next()? == "flow").then_some(())?;
    let i = w.next()?.parse().ok()?;
    (w.next()? == "try").then_some(())?;
    Some((i, w.next()?.parse().ok()?))
}

/// One datagram from a non-blocking socket, `None` once it holds no more.
fn recv(s: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    match s.recv_from(buf) {
        Ok(r) => Some(r),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        // ECONNREFUSED and the like from an ICMP error: nothing to read.
        Err(_) => None,
    }
}

/// poll(2) over `fds` for at most `timeout`.
fn poll(fds: &mut [libc::pollfd], timeout: Duration) {
    for f in fds.iter_mut() {
        f.revents = 0;
    }
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: a valid array of pollfds for the call.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted, "poll: {e}");
    }
}
