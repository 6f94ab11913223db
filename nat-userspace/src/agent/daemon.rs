//! What makes the agent a daemon, beside its NAT duties in `agent`: the
//! metrics endpoint, the translation log, configuration reloads (SIGHUP,
//! `xnat reload`) and the state file that reports them.
//!
//! Everything that can fail because of the environment (binding the
//! metrics port, opening the log file) is done in [`Daemon::prepare`],
//! before anything is attached, and again before a reload changes any map,
//! so a failure leaves things as they were.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    agent::blocks::BlockReport,
    agent::events,
    agent::expiry::SweepReport,
    agent::http,
    agent::metrics::{self, AgentMetrics},
    agent::runtime::{self, AgentState},
    agent::sync::Sync,
    agent::{
        ipfix::Exporter,
        translog::{JsonSink, TransLog},
    },
    settings::config,
    settings::reconcile,
    settings::{self, Layer, LogTarget, Settings, napt::Allocation},
};
use anyhow::{Context as _, bail};
use nat_common::BindingEvent;
use tokio::task::JoinHandle;

pub struct Daemon {
    name: String,
    ifname: String,
    config: Option<PathBuf>,
    flags: Layer,
    settings: Settings,
    metrics: AgentMetrics,
    /// Bound before attaching; served once the runtime runs.
    listener: Option<std::net::TcpListener>,
    server: Option<(SocketAddr, JoinHandle<()>)>,
    translog: Option<TransLog>,
    /// Binding sync (`--sync-listen`): its socket is bound in `prepare`.
    sync: Option<Sync>,
    generation: u64,
}

fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .with_context(|| format!("metrics: cannot listen on {addr}"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// What a reload (or the start) changes in the translation log's sinks,
/// opened before any map changes so a failure changes nothing; `None`
/// keeps a sink as it is.
struct SinkChanges {
    json: Option<Option<JsonSink>>,
    ipfix: Option<Option<Exporter>>,
}

impl SinkChanges {
    /// The sinks `want` asks for against those of `cur`: the JSON file is
    /// always reopened (one logrotate moved is let go), the exporter kept
    /// while its collector stays (its sequence numbers go on).
    fn open(want: &Settings, cur: Option<&TransLog>) -> anyhow::Result<Self> {
        let json = match &want.log_bindings {
            Some(t) => {
                Some(Some(JsonSink::open(t.clone()).with_context(|| {
                    format!("opening the translation log {t}")
                })?))
            }
            None => cur.and_then(TransLog::target).map(|_| None),
        };
        let ipfix = match want.ipfix {
            Some(c) if cur.and_then(TransLog::collector) != Some(c) => {
                let domain = nix::net::if_::if_nametoindex(want.ifname.as_str()).unwrap_or(0);
                Some(Some(
                    Exporter::new(c, domain)
                        .with_context(|| format!("IPFIX: cannot send to {c}"))?,
                ))
            }
            Some(_) => None,
            None => cur.and_then(TransLog::collector).map(|_| None),
        };
        Ok(SinkChanges { json, ipfix })
    }

    /// Applies the changes to `log` (made if `want` asks for a sink and
    /// there is none; dropped if it asks for none); what changed, for the
    /// reload's summary.
    fn apply(
        self,
        log: &mut Option<TransLog>,
        want: &Settings,
        metrics: &AgentMetrics,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        if want.log_bindings.is_none() && want.ipfix.is_none() {
            if log.take().is_some() {
                notes.push("translation log stopped".to_string());
            }
            return notes;
        }
        let l = log.get_or_insert_with(|| {
            let mut l = TransLog::new();
            l.records = metrics.translog_records.clone();
            l
        });
        let was = (l.target().cloned(), l.collector());
        if let Some(j) = self.json {
            l.set_json(j);
        }
        if let Some(x) = self.ipfix {
            l.set_ipfix(x);
        }
        if l.target() != was.0.as_ref() {
            notes.push(match l.target() {
                Some(t) => format!("translation log to {t}"),
                None => "translation log (JSON lines) stopped".to_string(),
            });
        }
        if l.collector() != was.1 {
            notes.push(match l.collector() {
                Some(c) => format!("IPFIX to {c}"),
                None => "IPFIX export stopped".to_string(),
            });
        }
        notes
    }
}

impl Daemon {
    /// Binds and opens what `settings` asks for; `config` and `flags` are
    /// kept to rebuild the settings on reload.
    pub fn prepare(
        settings: &Settings,
        config: Option<PathBuf>,
        flags: Layer,
        dir: &Path,
    ) -> anyhow::Result<Daemon> {
        let metrics = AgentMetrics::default();
        let listener = settings.metrics.map(bind).transpose()?;
        let mut translog = None;
        SinkChanges::open(settings, None)?.apply(&mut translog, settings, &metrics);
        let sync = match (&settings.sync, &settings.napt) {
            (Some(s), Some(n)) => Some(Sync::prepare(s, n, &metrics)?),
            _ => None,
        };
        Ok(Daemon {
            name: runtime::name_of(dir),
            ifname: settings.ifname.clone(),
            config,
            flags,
            settings: settings.clone(),
            metrics,
            listener,
            server: None,
            translog,
            sync,
            generation: 0,
        })
    }

    /// Starts serving metrics, asks the data plane for binding events if
    /// we log them, and publishes the state file. Needs the runtime.
    pub fn start(&mut self, dir: &Path, message: &str) -> anyhow::Result<()> {
        if let Some(l) = self.listener.take() {
            self.serve(dir, l)?;
        }
        self.name_nat64_hosts(dir)?;
        self.want_events(dir)?;
        if let Some(s) = &mut self.sync {
            s.start(dir)?;
        }
        self.publish(true, message);
        Ok(())
    }

    /// Asks the data plane for the events the log's sinks need: bindings
    /// for either (not under block allocation, which logs blocks), host
    /// caps for IPFIX; and bindings for binding sync, which announces
    /// each new mapping (the log still logs only if it is on: its sinks
    /// decide, not the mask).
    pub fn want_events(&self, dir: &Path) -> anyhow::Result<()> {
        let log = self.translog.as_ref();
        events::want(
            dir,
            self.logs_bindings() || self.sync.is_some(),
            log.is_some_and(|l| l.collector().is_some()),
        )
    }

    /// Has the translation log (if any) name NAT64 bindings by their IPv6
    /// host, from the attachment's `NAT64_IDS` (pinned by now).
    fn name_nat64_hosts(&mut self, dir: &Path) -> anyhow::Result<()> {
        if let Some(log) = &mut self.translog {
            log.set_hosts(Box::new(crate::tables::Tables::at(dir).nat64_ids()?));
        }
        Ok(())
    }

    /// Whether the settings in force allocate port blocks.
    fn allocates_blocks(&self) -> bool {
        self.settings
            .napt
            .as_ref()
            .is_some_and(|n| matches!(n.allocation, Allocation::Block { .. }))
    }

    fn serve(&mut self, dir: &Path, l: std::net::TcpListener) -> anyhow::Result<()> {
        let addr = l.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(l)?;
        let (dir, ifname, m) = (dir.to_path_buf(), self.ifname.clone(), self.metrics.clone());
        let render: http::Render = Arc::new(move || metrics::render(&dir, &ifname, &m));
        if let Some((_, old)) = self.server.take() {
            old.abort();
        }
        self.server = Some((addr, tokio::spawn(http::serve(listener, render))));
        tracing::info!("metrics on http://{addr}/metrics");
        Ok(())
    }

    fn publish(&self, ok: bool, message: &str) {
        let state = AgentState {
            pid: std::process::id(),
            config: self.config.clone(),
            generation: self.generation,
            ok,
            message: message.to_string(),
            translog: match self.translog.as_ref().and_then(TransLog::target) {
                Some(LogTarget::File(path)) => Some(path.clone()),
                _ => None,
            },
        };
        if let Err(e) = runtime::write_state(&self.name, &state) {
            tracing::warn!("{e:#}");
        }
    }

    /// A binding-created record from the ring buffer.
    pub fn binding_created(&mut self, ev: &BindingEvent) {
        if let Some(log) = &mut self.translog {
            log.created(ev);
        }
        if let Some(s) = &mut self.sync {
            s.binding_created(ev);
        }
    }

    /// Every tick: binding sync's full announcement when it is due.
    pub fn sync_tick(&mut self, dir: &Path) {
        if let Some(s) = &mut self.sync {
            s.tick(dir);
        }
    }

    /// A new mapping refused (ports exhausted, host cap): exported as an
    /// IPFIX event.
    pub fn refused(&mut self, ev: &nat_common::Event) {
        if let Some(log) = &mut self.translog {
            log.refused(ev);
        }
    }

    /// After a batch of ring records.
    pub fn flush(&mut self) {
        if let Some(s) = &mut self.sync {
            s.flush();
        }
        if let Some(log) = &mut self.translog {
            log.flush();
            let (counts, errors) = log.take_ipfix_counts();
            self.metrics.ipfix(&counts, errors);
        }
    }

    /// Whether the translation log logs each binding (its sweeps then
    /// need every mapping listed): it is on, and the allocation is not by
    /// blocks (which logs blocks instead).
    pub fn logs_bindings(&self) -> bool {
        self.translog.is_some() && !self.allocates_blocks()
    }

    /// After the block keeper's pass: its events to the log and metrics.
    pub fn blocks(&mut self, r: &BlockReport) {
        for ev in &r.events {
            if let Some(why) = ev.released {
                self.metrics.block_released(why.name());
            }
        }
        if r.kept + r.repaired > 0 {
            tracing::info!(
                "port blocks: kept {} a binding was made in while releasing, repaired {} host list(s)",
                r.kept,
                r.repaired
            );
        }
        if let Some(log) = &mut self.translog {
            log.blocks(&r.events);
            let (counts, errors) = log.take_ipfix_counts();
            self.metrics.ipfix(&counts, errors);
        }
    }

    /// After a sweep that began reading the tables at `listed_from`
    /// (data-plane clock).
    pub fn after_sweep(&mut self, r: &SweepReport, listed_from: u64) {
        self.metrics.sweep(
            r.duration_us as f64 / 1e6,
            r.in_kernel,
            r.sessions_expired,
            r.mappings_expired,
            r.orphans_removed,
            r.stand_ins_freed,
        );
        if self.logs_bindings()
            && let Some(log) = &mut self.translog
        {
            log.after_sweep(&r.expired, &r.remaining, listed_from);
            let (counts, errors) = log.take_ipfix_counts();
            self.metrics.ipfix(&counts, errors);
        }
    }

    /// Re-reads the config file and applies the difference (SIGHUP).
    pub fn reload(&mut self, dir: &Path) {
        self.generation += 1;
        let result = self.try_reload(dir);
        let (ok, message) = match &result {
            Ok(summary) => {
                tracing::info!("reload {}: {summary}", self.generation);
                (true, summary.clone())
            }
            Err(e) => {
                tracing::error!("reload {} failed, nothing changed: {e:#}", self.generation);
                (false, format!("{e:#}"))
            }
        };
        self.metrics.reload(ok);
        self.publish(ok, &message);
    }

    fn try_reload(&mut self, dir: &Path) -> anyhow::Result<String> {
        let Some(path) = &self.config else {
            bail!("the agent was started without --config: there is no file to reload");
        };
        let file = config::load(path)?;
        let layer = self.flags.clone().over(file);
        let want = settings::resolve(&layer, "no interface")?;
        if want.ifname != self.ifname {
            bail!(
                "the config now names interface {}, this agent runs on {}; \
                 a different interface needs its own `xnat attach`",
                want.ifname,
                self.ifname
            );
        }
        // Binding sync keeps its socket and peers: a change needs a new
        // agent (which adopts the attachment, so no flow is lost).
        if want.sync != self.settings.sync {
            bail!(
                "the binding sync settings ([sync], --sync-*) differ from those the agent runs \
                 with ({}); a reload cannot change them: restart the agent (stopped with --keep, \
                 or killed, a new `xnat attach` adopts the attachment without losing a flow)",
                self.sync
                    .as_ref()
                    .map_or("off".to_string(), |s| crate::settings::sync::describe(
                        s.settings()
                    ))
            );
        }
        // Agent-side resources first: if they fail, no map has changed.
        let listener = match want.metrics {
            Some(a) if self.server.as_ref().map(|(cur, _)| *cur) != Some(a) => Some(bind(a)?),
            _ => None,
        };
        let sinks = SinkChanges::open(&want, self.translog.as_ref())?;

        let live = reconcile::read_live(dir)?;
        let plan = reconcile::plan(&live, &want)?;
        reconcile::apply(dir, &live, &plan)?;
        if let Some(w) = want
            .napt
            .as_ref()
            .and_then(crate::settings::ephemeral::check)
        {
            tracing::warn!("{w}");
        }

        let mut notes = vec![plan.summary()];
        if let Some(l) = listener {
            self.serve(dir, l)?;
            notes.push(format!(
                "metrics on {}",
                want.metrics.expect("listener implies address")
            ));
        } else if want.metrics.is_none()
            && let Some((addr, task)) = self.server.take()
        {
            task.abort();
            notes.push(format!("metrics on {addr} stopped"));
        }
        notes.extend(sinks.apply(&mut self.translog, &want, &self.metrics));
        self.name_nat64_hosts(dir)?;
        self.want_events(dir)?;
        if let (Some(s), Some(n)) = (&self.sync, &want.napt) {
            s.set_rules(n);
        }
        self.settings = want;
        Ok(notes.join("; "))
    }

    pub fn keep(&self) -> bool {
        self.settings.keep
    }

    /// `--expiry-walk kernel` (the default).
    pub fn walks_in_kernel(&self) -> bool {
        self.settings.expiry_walk == crate::settings::ExpiryWalk::Kernel
    }
}
