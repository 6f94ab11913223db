//! The foreground agent of `xnat attach`: waits for a signal or for an
//! external `xnat detach`, then leaves the interface as it found it.
//!
//! (Expiry, events and metrics join this loop with the NAPT and daemon
//! work; for static NAT there is nothing to sweep.)
use std::time::Duration;

use anyhow::Context as _;
use nat_userspace::{loader, pins};
use tokio::signal::unix::{SignalKind, signal};

pub fn run(attachment: loader::Attachment, keep: bool) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the agent runtime")?;
    rt.block_on(async move {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        // Polling the pins is how we notice `xnat detach` from another
        // shell; once a second is plenty for a human-driven command.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let why = loop {
            tokio::select! {
                _ = sigint.recv() => break "SIGINT",
                _ = sigterm.recv() => break "SIGTERM",
                _ = tick.tick() => {
                    if !pins::is_attached(&attachment.dir) {
                        println!("xnat: {} was detached by another command; exiting", attachment.ifname);
                        return Ok(());
                    }
                }
            }
        };
        if keep {
            println!(
                "xnat: {why}: leaving {} attached (--keep); `xnat detach {}` removes it",
                attachment.ifname, attachment.ifname
            );
        } else {
            loader::teardown(&attachment.dir)?;
            println!("xnat: {why}: detached from {}", attachment.ifname);
        }
        anyhow::Ok(())
    })
}
