//! The agent: the foreground process of `xnat attach`, from attach or
//! adopt (`lifecycle`, `runtime`) to detach. Its loop (here) expires idle
//! NAPT bindings (`expiry`), answers port exhaustion with ICMP code 13
//! (`events`, `icmp_reply`), and waits for a signal or an external `xnat
//! detach`, then leaves the interface as it found it; `daemon` adds the
//! metrics endpoint (`metrics`, `http`), the translation log (`translog`)
//! and reloads.
pub mod blocks;
pub mod clock;
pub mod daemon;
pub mod events;
pub mod expiry;
mod fasthash;
pub mod http;
pub mod icmp_reply;
pub mod ipfix;
pub mod lifecycle;
pub mod metrics;
pub mod runtime;
pub mod sync;
pub mod translog;

use std::time::{Duration, Instant};

use crate::{loader, settings::napt, tables::Tables, tables::pins};
use anyhow::Context as _;

use daemon::Daemon;
use events::Record;
use expiry::Sweeper;
use icmp_reply::IcmpSender;
use lifecycle::Running;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
    time::MissedTickBehavior,
};

/// ICMP errors the agent sends per second at most (RFC 1812 asks routers
/// to rate-limit them; a port-exhausted host would otherwise get one per
/// dropped packet).
const ICMP_PER_SECOND: u32 = 50;

pub fn run(attachment: Running, daemon: Daemon) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the agent runtime")?;
    rt.block_on(main_loop(attachment, daemon))
}

/// The signals the agent handles: held back (blocked, so they wait) from
/// before `xnat attach` changes anything until the agent's loop has its
/// handlers, so a SIGTERM that comes while it attaches or just after its
/// "attached" line detaches cleanly instead of killing the process and
/// leaving the programs attached.
const HANDLED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Blocks [`HANDLED`] on this thread (and the threads it starts later)
/// until [`run`] takes them.
pub fn hold_signals() {
    set_mask(libc::SIG_BLOCK);
}

fn set_mask(how: libc::c_int) {
    // SAFETY: plain libc calls on a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in HANDLED {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

async fn main_loop(attachment: Running, mut daemon: Daemon) -> anyhow::Result<()> {
    let dir = attachment.dir.clone();
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    // Handlers in place: what came meanwhile is delivered now.
    set_mask(libc::SIG_UNBLOCK);
    // Polling the pins is how we notice `xnat detach` from another shell;
    // the same tick drives the expiry sweep.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A sweep longer than a tick must not be followed by a burst of the
    // ticks it missed.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Ticks until the next sweep (`expiry::ticks_between_sweeps`).
    let mut sweep_in: u32 = 1;
    let sweeper = Sweeper::open(&dir)?;
    let mut keeper = blocks::BlockKeeper::open(&dir)?;
    let ring = Tables::at(&dir).events()?;
    // SAFETY: the ring buffer owns its fd for as long as the AsyncFd owns
    // the ring buffer; nothing else closes it.
    let mut events = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow::anyhow!("watching the event ring buffer: {e}"))?;
    let icmp = IcmpSender::new().ok();
    let mut icmp_budget = ICMP_PER_SECOND;
    daemon.start(&dir, &attachment.changes)?;

    let why = loop {
        tokio::select! {
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            _ = sighup.recv() => daemon.reload(&dir),
            _ = tick.tick() => {
                if !pins::is_attached(&dir) {
                    println!("xnat: {} was detached by another command; exiting", attachment.ifname);
                    return Ok(());
                }
                if crate::loader::netdev::ifindex(&attachment.ifname).is_err() {
                    // The device is gone (a deleted veth, an unplugged NIC):
                    // its links died with it; drop the leftover pins.
                    loader::teardown(&dir)?;
                    println!("xnat: {} disappeared; removed its state and exiting", attachment.ifname);
                    return Ok(());
                }
                icmp_budget = ICMP_PER_SECOND;
                daemon.sync_tick(&dir);
                // An `xnat trace` killed before it could switch tracing off.
                if let Ok(true) = crate::tables::trace::clear_if_orphaned(&dir) {
                    tracing::info!("switched off the trace of a process that is gone");
                }
                let cfg = napt::read_config(&dir)?;
                if cfg.pool_len != 0 {
                    // Records of bindings made before the sweep first, so
                    // the translation log sees creation before deletion.
                    drain_events(events.get_mut(), icmp.as_ref(), &mut icmp_budget, &mut daemon);
                    sweep_in -= 1;
                    if sweep_in > 0 {
                        continue;
                    }
                    let started = Instant::now();
                    // The block keeper counts the bindings of each block.
                    let by_blocks = cfg.allocation == nat_common::blocks::ALLOCATION_BLOCK;
                    sweeper.list_mappings(daemon.logs_bindings() || by_blocks);
                    sweeper.walk_in_kernel(daemon.walks_in_kernel());
                    let listed_from = clock::now_ns();
                    let swept = sweeper.sweep(&cfg, listed_from);
                    sweep_in = expiry::ticks_between_sweeps(started.elapsed());
                    // And the records of bindings made while it ran: a
                    // binding the sweep read whose record is already in the
                    // ring is logged from the record, not "late" from the
                    // table.
                    drain_events(events.get_mut(), icmp.as_ref(), &mut icmp_budget, &mut daemon);
                    match swept {
                        Ok(r) => {
                            if r.sessions_expired + r.mappings_expired > 0 {
                                tracing::info!(
                                    "expired {} session(s), {} mapping(s) in {} us",
                                    r.sessions_expired, r.mappings_expired, r.duration_us
                                );
                            }
                            if r.orphans_removed > 0 {
                                tracing::info!(
                                    "removed {} public endpoint(s) that no mapping used",
                                    r.orphans_removed
                                );
                            }
                            if r.stand_ins_freed > 0 {
                                tracing::info!(
                                    "freed {} NAT64 stand-in(s) that no mapping used",
                                    r.stand_ins_freed
                                );
                            }
                            daemon.after_sweep(&r, listed_from);
                            match keeper.after_sweep(&cfg, listed_from, &r.remaining, !r.in_kernel) {
                                Ok(b) => daemon.blocks(&b),
                                Err(e) => tracing::error!("port blocks: {e:#}"),
                            }
                        }
                        Err(e) => tracing::error!("expiry sweep failed: {e:#}"),
                    }
                }
            }
            guard = events.readable_mut() => {
                let mut guard = guard?;
                drain_events(guard.get_inner_mut(), icmp.as_ref(), &mut icmp_budget, &mut daemon);
                guard.clear_ready();
            }
        }
    };
    if daemon.keep() {
        println!(
            "xnat: {why}: leaving {} attached (--keep); `xnat detach {}` removes it",
            attachment.ifname, attachment.ifname
        );
    } else {
        loader::teardown(&dir)?;
        println!("xnat: {why}: detached from {}", attachment.ifname);
    }
    Ok(())
}

/// Handles every record in the ring, then flushes the translation log.
/// Always both: records drained on a tick are gone from the ring before
/// epoll reports it readable (epoll re-checks and then stays silent), so
/// lines left in the buffer there would wait for the next sweep, up to
/// ten seconds when sweeps are spaced out.
fn drain_events(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    icmp: Option<&IcmpSender>,
    budget: &mut u32,
    daemon: &mut Daemon,
) {
    while let Some(item) = ring.next() {
        handle_event(&item, icmp, budget, daemon);
    }
    daemon.flush();
}

fn handle_event(bytes: &[u8], icmp: Option<&IcmpSender>, budget: &mut u32, daemon: &mut Daemon) {
    let ev = match events::decode(bytes) {
        Some(Record::PortsExhausted(ev)) => {
            daemon.refused(&ev);
            ev
        }
        Some(Record::HostCap(ev)) => return daemon.refused(&ev),
        Some(Record::BindingCreated(b)) => return daemon.binding_created(&b),
        None => return,
    };
    // A NAT64 host was refused as its stand-in: an ICMP error to an
    // address in 0.0.0.0/8 goes nowhere (the kernel refuses to send it).
    if events::quoted_source(&ev).is_some_and(|(src, _)| nat_common::nat64::is_stand_in(src)) {
        return;
    }
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    let len = (ev.quote_len as usize).min(ev.quote.len());
    if let Some(sender) = icmp
        && let Err(e) = sender.admin_prohibited(&ev.quote[..len])
    {
        tracing::warn!("sending ICMP administratively prohibited: {e}");
    }
}
