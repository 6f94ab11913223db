//! Binding sync: gateways that announce their mappings to each other, so
//! a standby that takes over can deliver the inbound packets of flows it
//! never saw (a download whose server speaks first after the failover).
//!
//! * announcing (`Sync::binding_created`, `Sync::flush`,
//!   `Sync::refresh_due`): each mapping the data plane makes (its
//!   binding-created record from the ring), batched per drain of the ring;
//!   and every `--sync-refresh` seconds every mapping carried here (a full
//!   read of `NAPT_OUT`), less port forwards and peer copies nobody uses
//!   here, so two gateways never echo each other's mappings;
//! * receiving (a task on the agent's runtime): datagrams from the peers'
//!   addresses only (and with a valid MAC if keyed), each record checked
//!   against the NAPT settings ([`install::Rules`]) and installed as a
//!   mapping flagged `MAPPING_PEER` ([`install::Installer`]).
//!
//! Both go through one UDP socket, bound before anything is attached.
pub mod install;
pub mod wire;

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use nat_common::{BindingEvent, EndpointKey, MAPPING_FORWARD, MAPPING_PEER};
use tokio::{net::UdpSocket, sync::mpsc, task::JoinHandle};

use crate::{
    agent::clock, agent::metrics::AgentMetrics, settings::napt::NaptSettings,
    settings::sync::SyncSettings, tables::Tables,
};
use install::{Installer, Outcome, Rules};
use wire::{MAX_RECORDS, Record};

/// Binding sync's side of the agent.
pub struct Sync {
    settings: SyncSettings,
    /// Bound in `prepare`; handed to the tasks by `start`.
    socket: Option<std::net::UdpSocket>,
    rules: Arc<Mutex<Rules>>,
    metrics: AgentMetrics,
    /// Records of new mappings not sent yet.
    queue: Vec<Record>,
    /// Datagrams for the sender task.
    tx: Option<mpsc::UnboundedSender<(Vec<u8>, u64)>>,
    tasks: Vec<JoinHandle<()>>,
    last_refresh: Instant,
}

impl Sync {
    /// Binds the sync socket (before anything is attached, so a port in
    /// use leaves nothing behind).
    pub fn prepare(
        s: &SyncSettings,
        napt: &NaptSettings,
        metrics: &AgentMetrics,
    ) -> anyhow::Result<Sync> {
        let socket = std::net::UdpSocket::bind(s.listen)
            .with_context(|| format!("binding sync: cannot listen on {}", s.listen))?;
        socket.set_nonblocking(true)?;
        Ok(Sync {
            settings: s.clone(),
            socket: Some(socket),
            rules: Arc::new(Mutex::new(Rules::of(napt))),
            metrics: metrics.clone(),
            queue: Vec::new(),
            tx: None,
            tasks: Vec::new(),
            last_refresh: Instant::now(),
        })
    }

    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    /// Starts the receiver and the sender on the agent's runtime; the
    /// first full announcement goes out at once.
    pub fn start(&mut self, dir: &Path) -> anyhow::Result<()> {
        let Some(std) = self.socket.take() else {
            return Ok(());
        };
        let socket = Arc::new(UdpSocket::from_std(std)?);
        let installer = Installer::open(dir)?;
        let peers: HashSet<IpAddr> = self.settings.peers.iter().map(SocketAddr::ip).collect();
        let key = self.settings.key.as_ref().map(|k| k.bytes.clone());
        self.tasks.push(tokio::spawn(receive(
            socket.clone(),
            peers,
            key,
            self.rules.clone(),
            installer,
            self.metrics.clone(),
        )));
        let (tx, rx) = mpsc::unbounded_channel();
        self.tasks.push(tokio::spawn(send(
            socket,
            self.settings.peers.clone(),
            rx,
            self.metrics.clone(),
        )));
        self.tx = Some(tx);
        let peers: Vec<String> = self
            .settings
            .peers
            .iter()
            .map(ToString::to_string)
            .collect();
        tracing::info!(
            "binding sync: listening on {}, peers {}{}, refresh every {} s",
            self.settings.listen,
            peers.join(", "),
            if self.settings.key.is_some() {
                ", keyed"
            } else {
                ""
            },
            self.settings.refresh
        );
        self.refresh(dir);
        Ok(())
    }

    /// The NAPT settings changed (a reload): what records may name.
    pub fn set_rules(&self, napt: &NaptSettings) {
        *self.rules.lock().expect("rules lock") = Rules::of(napt);
    }

    /// A mapping the data plane made: announced on the next flush.
    pub fn binding_created(&mut self, ev: &BindingEvent) {
        self.queue.push(Record {
            proto: ev.proto,
            inside_addr: ev.inside_addr,
            inside_port: ev.inside_port,
            public_addr: ev.public_addr,
            public_port: ev.public_port,
        });
    }

    /// Sends what is queued.
    pub fn flush(&mut self) {
        let queue = std::mem::take(&mut self.queue);
        self.announce(&queue);
    }

    fn announce(&self, records: &[Record]) {
        let Some(tx) = &self.tx else { return };
        let key = self.settings.key.as_ref().map(|k| k.bytes.as_slice());
        for chunk in records.chunks(MAX_RECORDS) {
            let _ = tx.send((wire::encode(chunk, key), chunk.len() as u64));
        }
    }

    /// Every second: a full announcement when the refresh period is up.
    pub fn tick(&mut self, dir: &Path) {
        if self.last_refresh.elapsed() >= Duration::from_secs(u64::from(self.settings.refresh)) {
            self.refresh(dir);
        }
    }

    fn refresh(&mut self, dir: &Path) {
        self.last_refresh = Instant::now();
        match carried(dir) {
            Ok(records) => self.announce(&records),
            Err(e) => tracing::warn!("binding sync: reading the mappings: {e:#}"),
        }
    }
}

impl Drop for Sync {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The mappings this gateway announces: all of `NAPT_OUT` but port
/// forwards (configured on each gateway) and peer copies nobody uses here
/// (no first session, no session in `SESSIONS`): those are the peer's to
/// announce, and announcing them back would keep both copies alive for
/// ever. A peer copy that carries traffic here (after a failover) is
/// announced like a mapping made here.
pub fn carried(dir: &Path) -> anyhow::Result<Vec<Record>> {
    let tables = Tables::at(dir);
    let mappings = tables.napt_out()?.lookup_all()?;
    let idle_copy = |m: &nat_common::Mapping| m.flags & MAPPING_PEER != 0 && m.first.live == 0;
    let in_use: HashSet<EndpointKey> = if mappings.iter().any(|(_, m)| idle_copy(m)) {
        tables
            .sessions()?
            .lookup_all()?
            .into_iter()
            .map(|(k, _)| EndpointKey {
                addr: k.inside_addr,
                port: k.inside_port,
                proto: k.proto,
                _pad: 0,
            })
            .collect()
    } else {
        HashSet::new()
    };
    Ok(mappings
        .into_iter()
        .filter(|(k, m)| m.flags & MAPPING_FORWARD == 0 && (!idle_copy(m) || in_use.contains(k)))
        .map(|(k, m)| Record {
            proto: k.proto,
            inside_addr: k.addr,
            inside_port: k.port,
            public_addr: m.addr,
            public_port: m.port,
        })
        .collect())
}

/// The sender: each datagram to every peer.
async fn send(
    socket: Arc<UdpSocket>,
    peers: Vec<SocketAddr>,
    mut rx: mpsc::UnboundedReceiver<(Vec<u8>, u64)>,
    metrics: AgentMetrics,
) {
    while let Some((datagram, records)) = rx.recv().await {
        for p in &peers {
            match socket.send_to(&datagram, p).await {
                Ok(_) => {
                    metrics.sync_announced.inc_by(records);
                }
                Err(e) => {
                    metrics.sync_send_errors.inc();
                    tracing::debug!("binding sync: sending to {p}: {e}");
                }
            }
        }
    }
}

/// The receiver: datagrams from the peers, their records installed.
async fn receive(
    socket: Arc<UdpSocket>,
    peers: HashSet<IpAddr>,
    key: Option<Vec<u8>>,
    rules: Arc<Mutex<Rules>>,
    mut installer: Installer,
    metrics: AgentMetrics,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("binding sync: receiving: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !peers.contains(&from.ip()) {
            metrics.sync_rejected("peer", 1);
            tracing::debug!("binding sync: datagram from {from}, not a peer");
            continue;
        }
        let records = match wire::decode(&buf[..len], key.as_deref()) {
            Ok(r) => r,
            Err(why) => {
                metrics.sync_rejected(why.name(), 1);
                tracing::debug!(
                    "binding sync: datagram from {from} rejected: {}",
                    why.name()
                );
                continue;
            }
        };
        metrics.sync_received.inc_by(records.len() as u64);
        let now = clock::now_ns();
        let rules = rules.lock().expect("rules lock");
        for r in &records {
            if let Err(reason) = rules.check(r) {
                metrics.sync_rejected(reason, 1);
                continue;
            }
            match installer.install(r, now) {
                Ok(Outcome::Installed) => metrics.sync_installed.inc(),
                Ok(Outcome::Refreshed) => metrics.sync_refreshed.inc(),
                Ok(Outcome::Unchanged) => 0,
                Ok(Outcome::Conflict) => {
                    metrics.sync_rejected("conflict", 1);
                    0
                }
                Ok(Outcome::Full) => {
                    metrics.sync_rejected("full", 1);
                    0
                }
                Err(e) => {
                    metrics.sync_rejected("error", 1);
                    tracing::warn!("binding sync: installing a mapping: {e:#}");
                    0
                }
            };
        }
    }
}
