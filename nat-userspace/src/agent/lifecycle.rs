//! Starting the agent of an interface: a fresh attach, or adopting the
//! pinned state that a previous agent left running (it was SIGKILLed,
//! crashed, or stopped with `--keep`).
//!
//! The agent's pid-file lock decides which: while an agent holds it, a
//! second `attach` is refused; without a holder, a live attachment is
//! adopted — the programs keep running through the pins, so no flow notices
//! the agent change, and counters and bindings simply continue. Before
//! adopting, the layout version is checked, and the settings are
//! reconciled with the pinned state like a reload would.
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::{
    agent::runtime::{self, AgentLock, LockError},
    loader::netdev,
    loader::{self, AttachRequest},
    settings::Settings,
    settings::reconcile,
    tables::layout,
    tables::pins,
};

/// An attachment with its agent's lock held.
pub struct Running {
    pub ifname: String,
    pub dir: PathBuf,
    /// Inbound hook in use: "xdp" or "tc".
    pub ingress: String,
    /// Whether pinned state was adopted rather than freshly attached.
    pub adopted: bool,
    /// What adopting (or a fresh attach's finishing touches) changed.
    pub changes: String,
    pub lock: AgentLock,
    /// Program fds of a fresh attach (the pinned links keep the programs
    /// attached without them).
    _fresh: Option<loader::Attachment>,
}

/// Takes the agent lock of the interface in `s`: refused while another
/// agent runs for it. First, so nothing else is touched in that case.
pub fn lock(s: &Settings) -> anyhow::Result<AgentLock> {
    let dir = pins::iface_dir(&s.ifname)?;
    match AgentLock::acquire(&runtime::name_of(&dir)) {
        Ok(l) => Ok(l),
        Err(LockError::Held { pid }) => bail!(
            "{} already has xnat attached and its agent (pid {pid}) is running; \
             `xnat reload -i {}` applies a changed config, `xnat detach {}` removes it",
            s.ifname,
            s.ifname,
            s.ifname
        ),
        Err(LockError::Io(e)) => Err(e),
    }
}

/// Attaches or adopts according to `s`, holding `lock` (from [`lock`]).
pub fn start(s: &Settings, lock: AgentLock) -> anyhow::Result<Running> {
    let ifindex = netdev::ifindex(&s.ifname)?;
    let dir = pins::iface_dir(&s.ifname)?;

    if loader::is_live(&dir, ifindex) {
        layout::check(&dir, &s.ifname)?;
        let live = reconcile::read_live(&dir)?;
        let plan = reconcile::plan(&live, s)
            .with_context(|| format!("{}: cannot adopt the running attachment", s.ifname))?;
        reconcile::apply(&dir, &live, &plan)?;
        return Ok(Running {
            ifname: s.ifname.clone(),
            ingress: pins::ingress_mode(&dir).unwrap_or("?").to_string(),
            dir,
            adopted: true,
            changes: plan.summary(),
            lock,
            _fresh: None,
        });
    }

    let req = AttachRequest {
        ifname: &s.ifname,
        ingress: s.ingress,
        limits: s.limits,
        inside: &s.inside,
        inside_hook: s.inside_hook,
        fast_path: s.fast_path,
    };
    // Loaded with empty tables; filled the way a reload fills them, then
    // attached. A failure on the way drops `loaded`, which removes it all.
    let loaded = loader::load(&req)?;
    let live = reconcile::Live::fresh(loaded.ingress, &s.inside, &loaded.inside_xdp, s.limits);
    let plan = reconcile::plan(&live, s)?;
    reconcile::apply(loaded.dir(), &live, &plan)?;
    let attachment = loaded.attach(&req)?;
    Ok(Running {
        ifname: s.ifname.clone(),
        ingress: attachment.ingress.to_string(),
        dir,
        adopted: false,
        changes: plan.fresh_summary(),
        lock,
        _fresh: Some(attachment),
    })
}
