//! Loader: the BPF object onto devices. Loading the programs, pinning
//! their maps and links, attaching them to an interface (`netdev` knows
//! the devices, `link` the pinned links), and taking all of it down again. What the tables hold is not
//! the loader's business: between [`load`] and [`Loaded::attach`] the
//! caller fills them (`reconcile`, from an empty live state).
//! Settings reach it checked (`settings::resolve`).
pub mod link;
pub mod netdev;
pub mod selftest;
pub mod syscall_prog;

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf,
    maps::ProgramArray,
    programs::{SchedClassifier, TcAttachType, Xdp, XdpMode, links::FdLink},
};
use nat_common::{
    PROG_EGRESS_TC, PROG_EXPIRE, PROG_INGRESS_HANDOFF_TC, PROG_INGRESS_TC, PROG_INGRESS_XDP,
    PROG_INSIDE_TC, PROG_INSIDE_XDP, PROG_NAT64_HAIRPIN_TC, PROG_NAT64_IN_TC, PROG_NAT64_IN_XDP,
    PROG_NAT64_OUT_ERROR_TC, PROG_NAT64_OUT_NAT44_TC, PROG_NAT64_OUT_TC, PROG_NAT64_OUT_XDP,
    nat64::{
        MAP_NAT64_TC_PROGS, MAP_NAT64_XDP_PROGS, NAT64_SLOT_HAIRPIN, NAT64_SLOT_IN, NAT64_SLOT_OUT,
        NAT64_SLOT_OUT_ERROR, NAT64_SLOT_OUT_NAT44,
    },
};

use crate::{settings::HookMode, tables, tables::bpffs, tables::pins, tables::static_map};

/// What `load` and `attach` need to know.
pub struct AttachRequest<'a> {
    pub ifname: &'a str,
    pub ingress: HookMode,
    /// Capacity of the mapping and session tables.
    pub limits: Limits,
    /// Inside interfaces, where hairpinned traffic is translated.
    pub inside: &'a [String],
    /// Hook of the outbound fast path on the inside interfaces (XDP in
    /// front of the TC program, which always runs there).
    pub inside_hook: HookMode,
    /// Forward established flows in BPF (FIB lookup + redirect).
    pub fast_path: bool,
}

/// Table sizes, fixed at load time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_mappings: u32,
    pub max_sessions: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_mappings: nat_common::DEFAULT_MAX_MAPPINGS,
            max_sessions: nat_common::DEFAULT_MAX_SESSIONS,
        }
    }
}

/// A live attachment, as the agent holds it.
pub struct Attachment {
    pub ifname: String,
    pub dir: PathBuf,
    /// The resolved ingress mode (never `Auto`).
    pub ingress: HookMode,
    /// Keeps the program fds; the pinned links keep the programs attached
    /// on their own.
    _ebpf: Ebpf,
}

/// Removes a half-built attachment if `attach` fails part-way, so a failed
/// attach leaves nothing attached or pinned.
struct Rollback {
    dir: PathBuf,
    armed: bool,
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.armed {
            let _ = teardown(&self.dir);
        }
    }
}

/// Loaded and pinned, tables empty, nothing attached yet. Dropped without
/// [`Loaded::attach`], it removes what it pinned.
pub struct Loaded {
    ebpf: Ebpf,
    rollback: Rollback,
    /// The resolved ingress mode (never `Auto`).
    pub ingress: HookMode,
    /// The inside interfaces where the outbound fast path will run in XDP.
    pub inside_xdp: Vec<String>,
}

impl Loaded {
    pub fn dir(&self) -> &Path {
        &self.rollback.dir
    }
}

/// Loads xnat's object for `req.ifname` and pins its maps, empty but for
/// what describes the attachment itself (layout version, external
/// ifindex, the static tables' "empty" flag).
pub fn load(req: &AttachRequest<'_>) -> anyhow::Result<Loaded> {
    let ifindex = netdev::ifindex(req.ifname)?;
    bpffs::ensure_mounted()?;

    let dir = pins::iface_dir(req.ifname)?;
    if is_live(&dir, ifindex) {
        bail!(
            "{} already has xnat attached (state in {}); run `xnat detach {}` first",
            req.ifname,
            dir.display(),
            req.ifname
        );
    }
    // Leftovers whose links are gone or belong to a deleted device (e.g. a
    // SIGKILLed agent's veth was deleted and the name reused) are a dead
    // attachment: nothing is using them.
    teardown(&dir)?;
    pins::create_dir(&dir)?;
    let rollback = Rollback {
        dir: dir.clone(),
        armed: true,
    };

    let ebpf = tables::loader(&dir, req.limits)
        .load(crate::ebpf_object())
        .context("loading xnat's BPF object")?;
    let tables = tables::Tables::at(&dir);
    for path in tables.pin_paths() {
        pins::restrict(&path)?;
    }
    // Before anything can run: a restarted agent checks it before adopting.
    crate::tables::layout::write(&dir)?;

    pin_expiry_walk(&dir)?;
    static_map::StaticTable::open(&dir)?.sync_presence()?;
    // The external ifindex always (reload may switch the fast path on).
    tables
        .fast_path()?
        .set(nat_common::FAST_PATH_EXT_IFINDEX, ifindex, 0)?;

    // XDP on the inside interfaces only serves the fast path.
    let inside_xdp = req
        .inside
        .iter()
        .filter(|i| req.fast_path && req.inside_hook.resolve(i) == HookMode::Xdp)
        .cloned()
        .collect();
    Ok(Loaded {
        ebpf,
        rollback,
        ingress: req.ingress.resolve(req.ifname),
        inside_xdp,
    })
}

impl Loaded {
    /// Attaches the programs as `req` (the one given to [`load`]) says and
    /// pins their links.
    pub fn attach(self, req: &AttachRequest<'_>) -> anyhow::Result<Attachment> {
        let Loaded {
            mut ebpf,
            mut rollback,
            ingress,
            inside_xdp,
        } = self;
        let dir = rollback.dir.clone();

        // The NAT64 programs before anything that tail-calls them.
        if !req.inside.is_empty() {
            load_nat64(&mut ebpf, ingress, !inside_xdp.is_empty())?;
        }

        // Egress first: until ingress is attached too, nothing translated can
        // come back anyway, and outbound translation is what protects privacy.
        let egress = attach_tc(&mut ebpf, PROG_EGRESS_TC, req.ifname, TcAttachType::Egress)?;
        pin_link(egress, &dir.join(pins::LINK_EGRESS))?;
        match ingress {
            HookMode::Xdp => {
                if !req.inside.is_empty() {
                    // Behind XDP, for what it hands over (NAT64's packets
                    // to split into IPv6 fragments): before XDP, so that
                    // nothing handed over meets an empty TC hook.
                    let l = attach_tc(
                        &mut ebpf,
                        PROG_INGRESS_HANDOFF_TC,
                        req.ifname,
                        TcAttachType::Ingress,
                    )?;
                    pin_link(l, &dir.join(pins::LINK_INGRESS_HANDOFF_TC))?;
                }
                let l = attach_xdp(&mut ebpf, PROG_INGRESS_XDP, req.ifname)?;
                pin_link(l, &dir.join(pins::LINK_INGRESS_XDP))?;
            }
            _ => {
                let l = attach_tc(
                    &mut ebpf,
                    PROG_INGRESS_TC,
                    req.ifname,
                    TcAttachType::Ingress,
                )?;
                pin_link(l, &dir.join(pins::LINK_INGRESS_TC))?;
            }
        }

        for inside in req.inside {
            let l = attach_tc(&mut ebpf, PROG_INSIDE_TC, inside, TcAttachType::Ingress)?;
            pin_link(
                l,
                &dir.join(format!("{}{inside}", pins::LINK_INSIDE_PREFIX)),
            )?;
        }
        for inside in &inside_xdp {
            let l = attach_xdp(&mut ebpf, PROG_INSIDE_XDP, inside)?;
            pin_link(
                l,
                &dir.join(format!("{}{inside}", pins::LINK_INSIDE_XDP_PREFIX)),
            )?;
        }

        rollback.armed = false;
        Ok(Attachment {
            ifname: req.ifname.to_string(),
            dir,
            ingress,
            _ebpf: ebpf,
        })
    }
}

/// Loads the expiry walk (`xnat_expire`: never attached, run by the
/// agent's sweep) as a syscall program on the maps pinned in `dir`, and
/// pins it there, where the sweep opens it (`syscall_prog` says why that
/// type).
pub fn pin_expiry_walk(dir: &Path) -> anyhow::Result<()> {
    let mut maps = std::collections::HashMap::new();
    for name in nat_common::ALL_MAPS {
        let path = dir.join(name);
        if path.exists() {
            let fd = link::obj_get(&path).with_context(|| format!("opening {}", path.display()))?;
            maps.insert(*name, fd);
        }
    }
    let program = syscall_prog::load(crate::ebpf_object(), PROG_EXPIRE, |name| {
        maps.get(name).map(|fd| fd.as_raw_fd())
    })?;
    let path = dir.join(pins::PROG_EXPIRE);
    syscall_prog::pin(program.as_fd(), &path)?;
    pins::restrict(&path)
}

/// Loads the NAT64 programs into the program arrays their callers
/// tail-call through (the inside TC program for IPv6 frames; the ingress
/// program for packets NAT44 translated to a stand-in; the inside XDP
/// program, if `inside_xdp`, for established flows' IPv6 frames). The
/// arrays are pinned, so the programs stay in them without the agent.
fn load_nat64(ebpf: &mut Ebpf, ingress: HookMode, inside_xdp: bool) -> anyhow::Result<()> {
    let mut slots = vec![
        (PROG_NAT64_OUT_TC, MAP_NAT64_TC_PROGS, NAT64_SLOT_OUT),
        (
            PROG_NAT64_HAIRPIN_TC,
            MAP_NAT64_TC_PROGS,
            NAT64_SLOT_HAIRPIN,
        ),
        (
            PROG_NAT64_OUT_ERROR_TC,
            MAP_NAT64_TC_PROGS,
            NAT64_SLOT_OUT_ERROR,
        ),
        (
            PROG_NAT64_OUT_NAT44_TC,
            MAP_NAT64_TC_PROGS,
            NAT64_SLOT_OUT_NAT44,
        ),
        (PROG_NAT64_IN_TC, MAP_NAT64_TC_PROGS, NAT64_SLOT_IN),
    ];
    if ingress == HookMode::Xdp {
        slots.push((PROG_NAT64_IN_XDP, MAP_NAT64_XDP_PROGS, NAT64_SLOT_IN));
    }
    if inside_xdp {
        slots.push((PROG_NAT64_OUT_XDP, MAP_NAT64_XDP_PROGS, NAT64_SLOT_OUT));
    }
    for (prog, map, slot) in slots {
        let program = ebpf
            .program_mut(prog)
            .with_context(|| format!("program {prog} missing from the object"))?;
        let fd = if map == MAP_NAT64_XDP_PROGS {
            let p: &mut Xdp = program.try_into()?;
            p.load()
                .with_context(|| format!("loading {prog} (verifier)"))?;
            p.fd()?.try_clone()?
        } else {
            let p: &mut SchedClassifier = program.try_into()?;
            p.load()
                .with_context(|| format!("loading {prog} (verifier)"))?;
            p.fd()?.try_clone()?
        };
        let mut array: ProgramArray<_> = ebpf
            .map_mut(map)
            .with_context(|| format!("map {map} missing from the object"))?
            .try_into()?;
        array
            .set(slot, &fd, 0)
            .with_context(|| format!("putting {prog} into {map}"))?;
    }
    Ok(())
}

fn attach_tc(
    ebpf: &mut Ebpf,
    prog: &str,
    ifname: &str,
    hook: TcAttachType,
) -> anyhow::Result<FdLink> {
    let program: &mut SchedClassifier = ebpf
        .program_mut(prog)
        .with_context(|| format!("program {prog} missing from the object"))?
        .try_into()?;
    // One program may serve several interfaces (inside interfaces).
    if program.fd().is_err() {
        program
            .load()
            .with_context(|| format!("loading {prog} (verifier)"))?;
    }
    // On kernels >= 6.6 aya attaches through TCX links, which coexist with
    // other tc programs and can be pinned like any BPF link.
    let id = program
        .attach(ifname, hook)
        .with_context(|| format!("attaching {prog} to {ifname} ({hook:?})"))?;
    let link = program.take_link(id)?;
    FdLink::try_from(link).context("tc attachment is not a BPF link (kernel older than 6.6?)")
}

fn attach_xdp(ebpf: &mut Ebpf, prog: &str, ifname: &str) -> anyhow::Result<FdLink> {
    let program: &mut Xdp = ebpf
        .program_mut(prog)
        .with_context(|| format!("program {prog} missing from the object"))?
        .try_into()?;
    // One program may serve several interfaces (inside interfaces).
    if program.fd().is_err() {
        program
            .load()
            .with_context(|| format!("loading {prog} (verifier)"))?;
    }
    let id = program
        .attach(ifname, XdpMode::Default)
        .with_context(|| format!("attaching {prog} to {ifname} (XDP)"))?;
    let link = program.take_link(id)?;
    FdLink::try_from(link).context("XDP attachment is not a BPF link")
}

fn pin_link(link: FdLink, path: &Path) -> anyhow::Result<()> {
    // Dropping the PinnedLink closes our fd; the pin keeps the link alive.
    link.pin(path)
        .with_context(|| format!("pinning {}", path.display()))?;
    pins::restrict(path)
}

/// Whether `dir` holds links that are attached to the device `ifindex`
/// right now (not merely pins left behind by a device that is gone).
pub fn is_live(dir: &Path, ifindex: u32) -> bool {
    pins::link_pins(dir)
        .iter()
        .any(|p| link::ifindex_of_pinned(p).is_ok_and(|i| i == ifindex))
}

/// Detaches every program of the attachment in `dir` and removes its pins.
/// Links whose interface vanished are already detached; that is not an
/// error.
pub fn teardown(dir: &Path) -> anyhow::Result<()> {
    for path in pins::link_pins(dir) {
        if let Err(e) = link::detach_pinned(&path) {
            // ENOLINK and friends: the device is gone, nothing to detach.
            if !matches!(e.raw_os_error(), Some(libc::ENOLINK) | Some(libc::ENODEV)) {
                tracing::warn!("detaching {}: {e}", path.display());
            }
        }
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    pins::remove_dir(dir)
}

/// `xnat detach IFACE`.
pub fn detach(ifname: &str) -> anyhow::Result<()> {
    let dir = pins::iface_dir(ifname)?;
    if !dir.exists() {
        return Err(pins::NotAttached(format!("{ifname} does not have xnat attached")).into());
    }
    teardown(&dir)
}
