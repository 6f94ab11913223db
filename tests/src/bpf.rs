//! Loading xnat's compiled BPF object and running its programs on single
//! frames through `BPF_PROG_TEST_RUN`.
//!
//! Every [`Nat`] is its own `Ebpf` instance with its own, unpinned maps, so
//! tests running in parallel threads do not see each other's state.

use std::net::Ipv4Addr;

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::{HashMap, IterableMap as _, MapData, MapError, ProgramArray};
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, Pod};
use nat_common::nat64::{
    MAP_NAT64_TC_PROGS, MAP_NAT64_XDP_PROGS, NAT64_SLOT_IN, NAT64_SLOT_OUT, NAT64_SLOT_OUT_NAT44,
};
use nat_common::stats::COUNTER_COUNT;
use nat_common::{
    Counter, PROG_EGRESS_TC, PROG_INGRESS_TC, PROG_INGRESS_XDP, PROG_INSIDE_TC, PROG_INSIDE_XDP,
    PROG_NAT64_IN_TC, PROG_NAT64_IN_XDP, PROG_NAT64_OUT_NAT44_TC, PROG_NAT64_OUT_TC,
};
use nat_userspace::tables::{Loaded, LoadedRef};

/// The programs of the external interface.
pub const EXTERNAL_PROGRAMS: [&str; 3] = [PROG_INGRESS_XDP, PROG_INGRESS_TC, PROG_EGRESS_TC];

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;
pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;

/// Where a frame is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `xnat_ingress_xdp` (XDP).
    IngressXdp,
    /// `xnat_ingress_tc` (TC classifier on ingress).
    IngressTc,
    /// `xnat_egress_tc` (TC classifier on egress).
    EgressTc,
    /// `xnat_inside_tc` (TC classifier on an inside interface's ingress:
    /// hairpinning, and the outbound fast path).
    InsideTc,
    /// `xnat_inside_xdp` (XDP on an inside interface: the outbound fast
    /// path only).
    InsideXdp,
}

impl Hook {
    /// Both ingress programs, which must behave the same.
    pub const INGRESS: [Hook; 2] = [Hook::IngressXdp, Hook::IngressTc];

    pub fn program_name(self) -> &'static str {
        match self {
            Hook::IngressXdp => PROG_INGRESS_XDP,
            Hook::IngressTc => PROG_INGRESS_TC,
            Hook::EgressTc => PROG_EGRESS_TC,
            Hook::InsideTc => PROG_INSIDE_TC,
            Hook::InsideXdp => PROG_INSIDE_XDP,
        }
    }

    /// Whether the hook's program is an XDP one (the others are TC
    /// classifiers).
    pub fn is_xdp(self) -> bool {
        matches!(self, Hook::IngressXdp | Hook::InsideXdp)
    }

    /// The verdict that lets a packet continue (`XDP_PASS` / `TC_ACT_OK`).
    pub fn pass(self) -> u32 {
        if self.is_xdp() { XDP_PASS } else { TC_ACT_OK }
    }

    /// The verdict that drops a packet (`XDP_DROP` / `TC_ACT_SHOT`).
    pub fn drop(self) -> u32 {
        if self.is_xdp() { XDP_DROP } else { TC_ACT_SHOT }
    }

    /// The verdict of a packet the program redirected to another device
    /// (`XDP_REDIRECT` / `TC_ACT_REDIRECT`).
    pub fn redirect(self) -> u32 {
        if self.is_xdp() {
            XDP_REDIRECT
        } else {
            TC_ACT_REDIRECT
        }
    }

    /// A name for a verdict of this hook, for messages.
    pub fn verdict_name(self, v: u32) -> String {
        let name = match (self.is_xdp(), v) {
            (true, XDP_ABORTED) => "XDP_ABORTED",
            (true, XDP_DROP) => "XDP_DROP",
            (true, XDP_PASS) => "XDP_PASS",
            (true, 3) => "XDP_TX",
            (true, XDP_REDIRECT) => "XDP_REDIRECT",
            (false, TC_ACT_OK) => "TC_ACT_OK",
            (false, TC_ACT_SHOT) => "TC_ACT_SHOT",
            (false, TC_ACT_REDIRECT) => "TC_ACT_REDIRECT",
            (false, u32::MAX) => "TC_ACT_UNSPEC",
            _ => "?",
        };
        format!("{name} ({v})")
    }
}

/// What a program did with a frame.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub verdict: u32,
    /// The frame as the program left it.
    pub data: Vec<u8>,
}

/// Panics unless running as root: the packet tests load BPF programs and
/// must never silently pass without doing so.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        panic!("packet tests need root (cargo xtask test)");
    }
}

/// Loads (does not attach) the programs `names` of `ebpf`, each as the
/// kind of program the object declares it.
pub fn load_programs(ebpf: &mut Ebpf, names: &[&str]) -> Result<()> {
    for &name in names {
        let prog = ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("no program {name} in the object"))?;
        match prog {
            aya::programs::Program::Xdp(p) => p.load(),
            aya::programs::Program::SchedClassifier(p) => p.load(),
            _ => bail!("{name}: neither XDP nor a TC classifier"),
        }
        .with_context(|| format!("loading {name}"))?;
    }
    Ok(())
}

/// Pins the BPF object (program, map, link) behind `fd` at `path`
/// (BPF_OBJ_PIN), for objects aya offers no `pin` on through a shared
/// reference.
pub fn pin_fd(fd: std::os::fd::BorrowedFd<'_>, path: &std::path::Path) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("{} has a NUL byte", path.display()))?;
    // bpf_attr for BPF_OBJ_PIN: pathname, bpf_fd, file_flags.
    let mut attr = [0u64; 3];
    attr[0] = c.as_ptr() as u64;
    attr[1] = fd.as_raw_fd() as u64;
    // SAFETY: a zeroed attr of the command's size whose pointer refers to
    // a live C string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            6, // BPF_OBJ_PIN
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("pinning at {}", path.display()));
    }
    Ok(())
}

/// Loads xnat's object with `loader` and its programs `names`.
pub fn load_object(loader: &mut aya::EbpfLoader, names: &[&str]) -> Result<Ebpf> {
    let mut ebpf = loader
        .load(nat_userspace::ebpf_object())
        .context("EbpfLoader::load")?;
    load_programs(&mut ebpf, names)?;
    Ok(ebpf)
}

/// The NAT64 programs and where the programs that tail-call them find
/// them: (program, program array, slot), as `xnat attach` fills the
/// arrays (nat-userspace `loader::load_nat64`).
pub const NAT64_PROGRAMS: [(&str, &str, u32); 6] = [
    (PROG_NAT64_OUT_TC, MAP_NAT64_TC_PROGS, NAT64_SLOT_OUT),
    (
        nat_common::PROG_NAT64_OUT_ERROR_TC,
        MAP_NAT64_TC_PROGS,
        nat_common::nat64::NAT64_SLOT_OUT_ERROR,
    ),
    (
        PROG_NAT64_OUT_NAT44_TC,
        MAP_NAT64_TC_PROGS,
        NAT64_SLOT_OUT_NAT44,
    ),
    (PROG_NAT64_IN_TC, MAP_NAT64_TC_PROGS, NAT64_SLOT_IN),
    (PROG_NAT64_IN_XDP, MAP_NAT64_XDP_PROGS, NAT64_SLOT_IN),
    (
        nat_common::PROG_NAT64_OUT_XDP,
        MAP_NAT64_XDP_PROGS,
        nat_common::nat64::NAT64_SLOT_OUT,
    ),
];

/// Loads the NAT64 programs of `ebpf` and puts each into its program
/// array slot ([`NAT64_PROGRAMS`]), so that the tail calls of the programs
/// loaded after happen inside a test run too. As the loader does, call it
/// before loading anything that tail-calls them.
pub fn load_nat64_programs(ebpf: &mut Ebpf) -> Result<()> {
    for (name, map, slot) in NAT64_PROGRAMS {
        load_programs(ebpf, &[name])?;
        let prog = ebpf
            .program(name)
            .ok_or_else(|| anyhow!("no program {name} in the object"))?;
        let fd = match prog {
            aya::programs::Program::Xdp(p) => p.fd()?.try_clone()?,
            aya::programs::Program::SchedClassifier(p) => p.fd()?.try_clone()?,
            _ => bail!("{name}: neither XDP nor a TC classifier"),
        };
        let mut array: ProgramArray<_> = ebpf
            .map_mut(map)
            .ok_or_else(|| anyhow!("no map {map} in the object"))?
            .try_into()?;
        array
            .set(slot, &fd, 0)
            .with_context(|| format!("putting {name} into {map}[{slot}]"))?;
    }
    Ok(())
}

/// Loads xnat's object with `loader`: the NAT64 programs in their program
/// arrays ([`load_nat64_programs`]), then the programs `names`.
pub fn load_object_nat64(loader: &mut aya::EbpfLoader, names: &[&str]) -> Result<Ebpf> {
    let mut ebpf = loader
        .load(nat_userspace::ebpf_object())
        .context("EbpfLoader::load")?;
    load_nat64_programs(&mut ebpf)?;
    load_programs(&mut ebpf, names)?;
    Ok(ebpf)
}

/// A `struct xdp_md` for BPF_PROG_TEST_RUN: the whole frame of `len`
/// bytes as data, the ingress device `ifindex`, queue 0.
pub fn xdp_ctx(ifindex: u32, len: usize) -> Vec<u8> {
    let mut c = vec![0u8; 24];
    c[4..8].copy_from_slice(&(len as u32).to_ne_bytes()); // data_end
    c[12..16].copy_from_slice(&ifindex.to_ne_bytes()); // ingress_ifindex
    c
}

/// A `struct __sk_buff` for BPF_PROG_TEST_RUN with only `ingress_ifindex`
/// and `ifindex` set (offsets 36 and 40 of the UAPI struct): the skb's
/// device, whose namespace's FIB `bpf_fib_lookup` consults.
pub fn skb_ctx(ifindex: u32) -> Vec<u8> {
    let mut c = vec![0u8; 192];
    c[36..40].copy_from_slice(&ifindex.to_ne_bytes());
    c[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    c
}

/// Runs `frame` once through the loaded program `name` of `ebpf` (XDP or
/// TC, as the object declares it), as if it came in on `ifindex` (the
/// device must exist in the calling thread's network namespace; `None`:
/// the namespace's loopback device). Room is left for programs that grow
/// the packet.
pub fn try_run_program(
    ebpf: &Ebpf,
    name: &str,
    frame: &[u8],
    ifindex: Option<u32>,
) -> Result<Outcome> {
    let prog = ebpf
        .program(name)
        .ok_or_else(|| anyhow!("no program {name}"))?;
    let xdp = matches!(prog, aya::programs::Program::Xdp(_));
    let ctx = ifindex.map(|i| {
        if xdp {
            xdp_ctx(i, frame.len())
        } else {
            skb_ctx(i)
        }
    });
    let mut out = vec![0u8; frame.len() + 512];
    let opts = TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ctx_in: ctx.as_deref(),
        repeat: 1,
        ..Default::default()
    };
    let res = if xdp {
        <&Xdp>::try_from(prog)?.test_run(opts)
    } else {
        <&SchedClassifier>::try_from(prog)?.test_run(opts)
    }
    .with_context(|| format!("BPF_PROG_TEST_RUN of {name}"))?;
    out.truncate(res.data_size_out as usize);
    Ok(Outcome {
        verdict: res.return_value,
        data: out,
    })
}

/// One loaded instance of xnat's BPF object with all three programs loaded
/// (not attached anywhere).
pub struct Nat {
    ebpf: Ebpf,
}

impl Nat {
    /// Loads the object and its programs; panics (with the reason) if that
    /// fails, after checking for root.
    pub fn load() -> Self {
        require_root();
        Self::try_load().unwrap_or_else(|e| panic!("loading xnat's BPF object: {e:#}"))
    }

    pub fn try_load() -> Result<Self> {
        let ebpf = load_object(&mut aya::EbpfLoader::new(), &EXTERNAL_PROGRAMS)?;
        Ok(Nat { ebpf })
    }

    /// Adds a static 1:1 mapping `private <-> public` (both directions).
    pub fn add_static(&mut self, private: Ipv4Addr, public: Ipv4Addr) {
        add_static(&mut self.ebpf, private, public);
    }

    /// Runs `frame` through the program of `hook` once.
    pub fn try_run(&self, hook: Hook, frame: &[u8]) -> Result<Outcome> {
        try_run(&self.ebpf, hook, frame)
    }

    /// [`Nat::try_run`], panicking on a syscall error.
    #[track_caller]
    pub fn run(&self, hook: Hook, frame: &[u8]) -> Outcome {
        self.try_run(hook, frame)
            .unwrap_or_else(|e| panic!("{hook:?}: {e:#}"))
    }

    /// A counter summed over all CPUs.
    pub fn counter(&self, c: Counter) -> u64 {
        self.counters()[c as usize]
    }

    /// All counters summed over all CPUs, indexed by [`Counter`].
    pub fn counters(&self) -> [u64; COUNTER_COUNT as usize] {
        counters(&self.ebpf)
    }
}

// The helpers below work on any loaded copy of the object, so every packet
// test harness (static, NAPT, ...) runs and reads programs the same way.

/// Adds a static 1:1 mapping `private` <-> `public` to `ebpf`'s tables.
pub fn add_static(ebpf: &mut Ebpf, private: Ipv4Addr, public: Ipv4Addr) {
    let (prv, pbl) = (
        u32::from_ne_bytes(private.octets()),
        u32::from_ne_bytes(public.octets()),
    );
    let mut out = Loaded::new(ebpf).static_out().expect("STATIC_OUT");
    out.insert(prv, pbl, 0).expect("insert into STATIC_OUT");
    let mut inb = Loaded::new(ebpf).static_in().expect("STATIC_IN");
    inb.insert(pbl, prv, 0).expect("insert into STATIC_IN");
}

/// Runs `frame` once through the program of `hook` in `ebpf` (repeat 1:
/// the kernel does not reset the packet between repeats).
pub fn try_run(ebpf: &Ebpf, hook: Hook, frame: &[u8]) -> Result<Outcome> {
    let name = hook.program_name();
    let prog = ebpf
        .program(name)
        .ok_or_else(|| anyhow!("no program {name}"))?;
    // Room for programs that grow the packet (none should, here).
    let mut out = vec![0u8; frame.len() + 512];
    // The kernel does not reset the packet between repeats: run once.
    let opts = TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat: 1,
        ..Default::default()
    };
    let res = if hook.is_xdp() {
        <&Xdp>::try_from(prog)?.test_run(opts)
    } else {
        <&SchedClassifier>::try_from(prog)?.test_run(opts)
    }
    .with_context(|| format!("BPF_PROG_TEST_RUN of {name}"))?;
    out.truncate(res.data_size_out as usize);
    Ok(Outcome {
        verdict: res.return_value,
        data: out,
    })
}

/// The loaded TC program of `hook` (not the XDP one) in `ebpf`.
pub fn tc_program(ebpf: &Ebpf, hook: Hook) -> Result<&SchedClassifier> {
    let name = hook.program_name();
    let prog = ebpf
        .program(name)
        .ok_or_else(|| anyhow!("no program {name}"))?;
    Ok(<&SchedClassifier>::try_from(prog)?)
}

/// [`tc_program`], to attach it somewhere.
pub fn tc_program_mut(ebpf: &mut Ebpf, hook: Hook) -> Result<&mut SchedClassifier> {
    let name = hook.program_name();
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("no program {name}"))?;
    Ok(<&mut SchedClassifier>::try_from(prog)?)
}

/// All counters of `ebpf` summed over all CPUs, indexed by [`Counter`].
pub fn counters(ebpf: &Ebpf) -> [u64; COUNTER_COUNT as usize] {
    let stats = LoadedRef::new(ebpf).stats().expect("STATS");
    let mut all = [0u64; COUNTER_COUNT as usize];
    for c in Counter::ALL {
        let v = stats.get(&(c as u32), 0).expect("reading STATS");
        all[c as usize] = v.iter().sum();
    }
    all
}

// The hash tables of a loaded object, each opened through its typed handle
// in `nat_userspace::tables` (`LoadedRef::napt_out` to read,
// `Loaded::napt_out` to change), which gives its key and value types.

/// A hash table of a loaded object, to read.
pub type Read<'e, K, V> = HashMap<&'e MapData, K, V>;
/// A hash table of a loaded object, to change.
pub type Write<'e, K, V> = HashMap<&'e mut MapData, K, V>;

/// The name of a map, for messages.
pub fn map_name(data: &MapData) -> String {
    data.info()
        .ok()
        .and_then(|i| i.name_as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Entry `k` of the table `table` opens in `ebpf`
/// (`get(ebpf, LoadedRef::napt_out, &key)`), if any.
pub fn try_get<'e, K: Pod, V: Pod>(
    ebpf: &'e Ebpf,
    table: impl FnOnce(&LoadedRef<'e>) -> Result<Read<'e, K, V>>,
    k: &K,
) -> Result<Option<V>> {
    let m = table(&LoadedRef::new(ebpf))?;
    match m.get(k, 0) {
        Ok(v) => Ok(Some(v)),
        Err(MapError::KeyNotFound) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", map_name(m.map()))),
    }
}

/// [`try_get`], panicking on errors.
#[track_caller]
pub fn get<'e, K: Pod, V: Pod>(
    ebpf: &'e Ebpf,
    table: impl FnOnce(&LoadedRef<'e>) -> Result<Read<'e, K, V>>,
    k: &K,
) -> Option<V> {
    try_get(ebpf, table, k).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Every entry of the table `table` opens in `ebpf`, collected into what
/// the caller holds them in (a `Vec`, a map keyed by `K`, ...).
pub fn try_all<'e, K: Pod, V: Pod, C: FromIterator<(K, V)>>(
    ebpf: &'e Ebpf,
    table: impl FnOnce(&LoadedRef<'e>) -> Result<Read<'e, K, V>>,
) -> Result<C> {
    let m = table(&LoadedRef::new(ebpf))?;
    m.iter()
        .map(|r| r.with_context(|| format!("iterating {}", map_name(m.map()))))
        .collect()
}

/// [`try_all`], panicking on errors.
#[track_caller]
pub fn all<'e, K: Pod, V: Pod>(
    ebpf: &'e Ebpf,
    table: impl FnOnce(&LoadedRef<'e>) -> Result<Read<'e, K, V>>,
) -> Vec<(K, V)> {
    try_all(ebpf, table).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Writes `k` → `v` into the table `table` opens in `ebpf`
/// (`put(ebpf, Loaded::napt_out, key, value)`).
pub fn try_put<'e, K: Pod, V: Pod>(
    ebpf: &'e mut Ebpf,
    table: impl FnOnce(Loaded<'e>) -> Result<Write<'e, K, V>>,
    k: K,
    v: V,
) -> Result<()> {
    let mut m = table(Loaded::new(ebpf))?;
    m.insert(k, v, 0)
        .with_context(|| format!("inserting into {}", map_name(m.map())))
}

/// [`try_put`], panicking on errors.
#[track_caller]
pub fn put<'e, K: Pod, V: Pod>(
    ebpf: &'e mut Ebpf,
    table: impl FnOnce(Loaded<'e>) -> Result<Write<'e, K, V>>,
    k: K,
    v: V,
) {
    try_put(ebpf, table, k, v).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Empties the table `table` opens in `ebpf`.
pub fn clear<'e, K: Pod, V: Pod>(
    ebpf: &'e mut Ebpf,
    table: impl FnOnce(Loaded<'e>) -> Result<Write<'e, K, V>>,
) -> Result<()> {
    let mut m = table(Loaded::new(ebpf))?;
    let name = map_name(m.map());
    let keys = m
        .keys()
        .collect::<Result<Vec<K>, _>>()
        .with_context(|| format!("reading {name}"))?;
    for k in keys {
        m.remove(&k)
            .with_context(|| format!("deleting from {name}"))?;
    }
    Ok(())
}
