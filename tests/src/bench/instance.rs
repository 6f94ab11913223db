//! One loaded copy of xnat's BPF object for benchmarking: maps sized for a
//! given number of bindings, NAPT configured, the programs under test
//! loaded (not attached), and fast raw access to the maps (batched updates,
//! the kernel's memory accounting, pinning for the expiry sweeper).

use std::{
    fs,
    net::Ipv4Addr,
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader, Pod,
    maps::{IterableMap as _, MapData, lpm_trie::Key as LpmKey},
    programs::{Program, SchedClassifier, TestRun as _, TestRunOptions, TestRunResult, Xdp},
};
use nat_common::{
    Counter, MAP_FILTER, MAP_HOST_PORTS, MAP_NAPT_IN, MAP_NAPT_OUT, MAP_SESSIONS, NatConfig,
    PROG_EGRESS_TC, PROG_INGRESS_TC, PROG_INGRESS_XDP, PROG_INSIDE_TC, PROG_NAT64_IN_TC,
    PROG_NAT64_IN_XDP, PROG_NAT64_OUT_ERROR_TC, PROG_NAT64_OUT_NAT44_TC, PROG_NAT64_OUT_TC,
    PROG_NOOP_XDP,
    nat64::{
        NAT64_SLOT_IN, NAT64_SLOT_OUT, NAT64_SLOT_OUT_ERROR, NAT64_SLOT_OUT_NAT44, Nat64Config,
        Nat64Host,
    },
    stats::COUNTER_COUNT,
};
use nat_common::{
    EndpointKey, InsideEndpoint,
    bench::{
        MAP_BASELINE_IN, MAP_BASELINE_OUT, PROG_BASELINE_NEW_TC, PROG_BASELINE_TC,
        PROG_BASELINE_XDP,
    },
};
use nat_userspace::settings::napt::NaptSettings;
use nat_userspace::tables::{Loaded, LoadedRef};

use xnat_tests::{
    bindings::Entries,
    bpf::{Read, map_name},
};

/// The programs the benchmark runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prog {
    NoopXdp,
    IngressXdp,
    IngressTc,
    EgressTc,
    /// TC ingress of the inside interfaces (hairpinning, the outbound fast
    /// path, and every IPv6 frame handed to NAT64); loaded by
    /// [`Instance::enable_nat64`] and [`Instance::enable_fast_path`] only.
    InsideTc,
    /// The minimal NAT (`bench-baseline` object), inbound in XDP.
    BaselineXdp,
    /// The minimal NAT, outbound in TC.
    BaselineTc,
    /// The minimal NAT making new bindings, outbound in TC.
    BaselineNewTc,
}

impl Prog {
    /// xnat's own programs (in its object).
    pub const XNAT: [Prog; 4] = [
        Prog::NoopXdp,
        Prog::IngressXdp,
        Prog::IngressTc,
        Prog::EgressTc,
    ];
    /// The minimal NAT's (in the `bench-baseline` object).
    pub const BASELINE: [Prog; 3] = [Prog::BaselineXdp, Prog::BaselineTc, Prog::BaselineNewTc];

    pub fn name(self) -> &'static str {
        match self {
            Prog::NoopXdp => PROG_NOOP_XDP,
            Prog::IngressXdp => PROG_INGRESS_XDP,
            Prog::IngressTc => PROG_INGRESS_TC,
            Prog::EgressTc => PROG_EGRESS_TC,
            Prog::InsideTc => PROG_INSIDE_TC,
            Prog::BaselineXdp => PROG_BASELINE_XDP,
            Prog::BaselineTc => PROG_BASELINE_TC,
            Prog::BaselineNewTc => PROG_BASELINE_NEW_TC,
        }
    }

    pub fn is_xdp(self) -> bool {
        matches!(self, Prog::NoopXdp | Prog::IngressXdp | Prog::BaselineXdp)
    }

    /// Whether it translates outbound packets (source NAT).
    pub fn outbound(self) -> bool {
        matches!(
            self,
            Prog::EgressTc | Prog::InsideTc | Prog::BaselineTc | Prog::BaselineNewTc
        )
    }

    /// The minimal NAT of the same hook: what this program's cost is
    /// judged against.
    pub fn baseline(self) -> Prog {
        if self.is_xdp() {
            Prog::BaselineXdp
        } else {
            Prog::BaselineTc
        }
    }

    /// XDP_PASS / TC_ACT_OK.
    pub fn pass(self) -> u32 {
        if self.is_xdp() { 2 } else { 0 }
    }
}

/// TC_ACT_REDIRECT: what a TC program that forwards a packet itself
/// (`bpf_redirect`) returns.
pub const TC_ACT_REDIRECT: u32 = 7;

/// The NAT64 programs and the program-array slots they go into, as the
/// loader puts them (nat-userspace loader `load_nat64`, XDP ingress): TC
/// programs into `NAT64_TC_PROGS`, the XDP one into `NAT64_XDP_PROGS`.
const NAT64_PROGS: [(&str, bool, u32); 5] = [
    (PROG_NAT64_OUT_TC, false, NAT64_SLOT_OUT),
    (PROG_NAT64_OUT_ERROR_TC, false, NAT64_SLOT_OUT_ERROR),
    (PROG_NAT64_OUT_NAT44_TC, false, NAT64_SLOT_OUT_NAT44),
    (PROG_NAT64_IN_TC, false, NAT64_SLOT_IN),
    (PROG_NAT64_IN_XDP, true, NAT64_SLOT_IN),
];

/// Table capacities of one instance, as `xnat attach --max-mappings
/// --max-sessions` would set them.
#[derive(Clone, Copy, Debug)]
pub struct Capacity {
    pub mappings: u32,
    pub sessions: u32,
}

/// The maps the expiry sweeper opens: the bindings' and the counts it
/// keeps (not counted in a binding's memory: one entry per host, or one),
/// NAT64's hosts (it frees the stand-ins no mapping uses) and the static
/// table (static NAT64 entries keep their stand-ins).
pub const SWEEP_MAPS: [&str; 13] = [
    MAP_NAPT_OUT,
    MAP_NAPT_IN,
    MAP_SESSIONS,
    MAP_FILTER,
    MAP_HOST_PORTS,
    nat_common::MAP_HOST_POOL,
    nat_common::MAP_INBOUND_SESSIONS,
    nat_common::MAP_EXPIRE,
    nat_common::MAP_EXPIRE_KEEP,
    nat_common::nat64::MAP_NAT64_IDS,
    nat_common::nat64::MAP_NAT64_HOSTS,
    // (The prefix's host length: its port caps' key.)
    nat_common::nat64::MAP_NAT64,
    nat_common::MAP_STATIC_OUT,
];

/// The pool every instance uses: 64 addresses from the benchmarking range
/// (RFC 2544) 198.18.0.0/26.
pub fn pool() -> Vec<Ipv4Addr> {
    (0..64).map(|i| Ipv4Addr::new(198, 18, 0, i)).collect()
}

/// The control plane's defaults (through its own conversion) with a pool
/// of `pool_len` addresses.
pub fn config(pool_len: u32) -> NatConfig {
    let defaults = NaptSettings::default();
    NatConfig {
        pool_len,
        ..defaults.config()
    }
}

pub struct Instance {
    ebpf: Ebpf,
    /// The minimal NAT, loaded beside xnat's object.
    baseline: Ebpf,
    pins: Option<PathBuf>,
}

/// Loads every program of `progs` in `ebpf` (not attached).
fn load_programs(ebpf: &mut Ebpf, progs: &[Prog]) -> Result<()> {
    let names: Vec<&str> = progs.iter().map(|p| p.name()).collect();
    xnat_tests::bpf::load_programs(ebpf, &names)
}

impl Instance {
    /// Loads the object with the binding tables sized by `cap`, NAPT on
    /// (the [`pool`], `10.0.0.0/8` inside, address-dependent filtering, RFC
    /// timeouts) and every program in [`Prog::XNAT`] loaded; beside it the
    /// minimal NAT ([`Prog::BASELINE`]) with tables of the same capacity.
    pub fn load(cap: Capacity) -> Result<Self> {
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(MAP_NAPT_OUT, cap.mappings)
            .map_max_entries(MAP_NAPT_IN, cap.mappings)
            .map_max_entries(MAP_HOST_PORTS, nat_common::host_ports_entries(cap.mappings))
            .map_max_entries(MAP_SESSIONS, cap.sessions)
            .map_max_entries(MAP_FILTER, cap.sessions);
        let mut ebpf = loader
            .load(nat_userspace::ebpf_object())
            .context("loading xnat's BPF object")?;
        load_programs(&mut ebpf, &Prog::XNAT)?;
        let mut baseline = EbpfLoader::new()
            .map_max_entries(MAP_BASELINE_IN, cap.mappings)
            .map_max_entries(MAP_BASELINE_OUT, cap.mappings)
            .load(nat_userspace::bench_baseline_object())
            .context("loading the minimal NAT (bench-baseline object)")?;
        load_programs(&mut baseline, &Prog::BASELINE)?;
        let mut inst = Instance {
            ebpf,
            baseline,
            pins: None,
        };
        let pool = pool();
        {
            let mut a = Loaded::new(&mut inst.ebpf).pool()?;
            for (i, addr) in pool.iter().enumerate() {
                a.set(i as u32, be(*addr), 0).context("writing POOL")?;
            }
        }
        {
            let mut a = Loaded::new(&mut inst.ebpf).config()?;
            a.set(0, config(pool.len() as u32), 0)
                .context("writing CONFIG")?;
        }
        {
            // No static mappings, and the agent says so (it skips two
            // lookups per packet).
            let mut a = Loaded::new(&mut inst.ebpf).static_empty()?;
            a.set(0, 1, 0).context("writing STATIC_EMPTY")?;
        }
        inst.add_internal(Ipv4Addr::new(10, 0, 0, 0), 8)?;
        Ok(inst)
    }

    /// Switches new mappings to deterministic allocation (RFC 7422) for
    /// the hosts of `net`/`len`, numbered from its first address, shared
    /// evenly over the pool (`nat_common::deterministic::Layout::plan`)
    /// with the ports from `ports_from` up (above those the bulk bindings
    /// hold, or the first hosts would find their ranges taken); returns
    /// (hosts per pool address, ports per host).
    pub fn deterministic(
        &mut self,
        net: Ipv4Addr,
        len: u32,
        ports_from: u16,
    ) -> Result<(u32, u32)> {
        let pool_len = pool().len() as u32;
        let layout = nat_common::deterministic::Layout::plan(
            1u64 << (32 - len),
            pool_len,
            ports_from,
            65535,
            None,
        )
        .map_err(|e| anyhow!("no deterministic layout for {net}/{len}: {e:?}"))?;
        {
            let mut t = Loaded::new(&mut self.ebpf).internal()?;
            let offset = nat_common::deterministic::host_offset(u32::from(net), 0);
            t.insert(&LpmKey::new(len, be(net)), offset, 0)
                .context("inserting into INTERNAL")?;
        }
        let mut a = Loaded::new(&mut self.ebpf).config()?;
        let mut cfg = config(pool_len);
        cfg.port_min = ports_from;
        cfg.allocation = nat_common::deterministic::ALLOCATION_DETERMINISTIC;
        cfg.det_hosts_per_addr = layout.hosts_per_addr;
        cfg.det_ports_per_host = layout.ports_per_host;
        a.set(0, cfg, 0).context("writing CONFIG")?;
        Ok((layout.hosts_per_addr, layout.ports_per_host))
    }

    /// Switches new mappings to port block allocation: blocks of `size`
    /// ports from `ports_from` up (above those the bulk bindings hold), at
    /// most `max_per_host` per host.
    pub fn blocks(&mut self, size: u32, max_per_host: u32, ports_from: u16) -> Result<()> {
        let mut a = Loaded::new(&mut self.ebpf).config()?;
        let mut cfg = config(pool().len() as u32);
        cfg.port_min = ports_from;
        cfg.allocation = nat_common::blocks::ALLOCATION_BLOCK;
        cfg.block_size = size;
        cfg.max_blocks_per_host = max_per_host;
        a.set(0, cfg, 0).context("writing CONFIG")?;
        Ok(())
    }

    /// Switches NAT64 on as `xnat attach --nat64 PREFIX/LEN --inside …
    /// --ingress xdp` does: the NAT64 programs loaded into their program
    /// arrays (both ingress hooks' `xnat_nat64_in_*`), `xnat_inside_tc`
    /// loaded, the prefix in `NAT64`.
    pub fn enable_nat64(&mut self, prefix: [u8; 16], len: u8) -> Result<()> {
        let cfg = Nat64Config::new(prefix, len).map_err(|e| anyhow!("NAT64 prefix /{len}: {e}"))?;
        self.load_inside_tc()?;
        for (name, xdp, slot) in NAT64_PROGS {
            let program = self
                .ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("no program {name} in the object"))?;
            let fd = if xdp {
                let p: &mut Xdp = program.try_into()?;
                p.load().with_context(|| format!("loading {name}"))?;
                p.fd()?.try_clone()?
            } else {
                let p: &mut SchedClassifier = program.try_into()?;
                p.load().with_context(|| format!("loading {name}"))?;
                p.fd()?.try_clone()?
            };
            let t = Loaded::new(&mut self.ebpf);
            let mut array = if xdp {
                t.nat64_xdp_progs()?
            } else {
                t.nat64_tc_progs()?
            };
            array
                .set(slot, &fd, 0)
                .with_context(|| format!("putting {name} into its program array"))?;
        }
        let mut a = Loaded::new(&mut self.ebpf).nat64()?;
        a.set(0, cfg, 0).context("writing NAT64")?;
        Ok(())
    }

    /// Gives the IPv6 host `addr` the stand-in `stand_in` (as loaded from
    /// a packet), as the data plane does on the host's first packet:
    /// `NAT64_IDS` and `NAT64_HOSTS`.
    pub fn nat64_host(&mut self, addr: [u8; 16], stand_in: u32, now: u64) -> Result<()> {
        {
            let mut ids = Loaded::new(&mut self.ebpf).nat64_ids()?;
            ids.insert(stand_in, Nat64Host { addr, created: now }, 0)
                .context("writing NAT64_IDS")?;
        }
        let mut hosts = Loaded::new(&mut self.ebpf).nat64_hosts()?;
        hosts
            .insert(addr, stand_in, 0)
            .context("writing NAT64_HOSTS")?;
        Ok(())
    }

    /// Loads `xnat_inside_tc` unless it is loaded.
    fn load_inside_tc(&mut self) -> Result<()> {
        let name = Prog::InsideTc.name();
        let p: &mut SchedClassifier = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("no program {name} in the object"))?
            .try_into()?;
        if p.fd().is_err() {
            p.load().with_context(|| format!("loading {name}"))?;
        }
        Ok(())
    }

    /// Switches the fast path on (`--fast-path`, TC on the inside
    /// interfaces): `xnat_inside_tc` loaded, `FAST_PATH[FAST_PATH_ON]`.
    /// The external interface must be set too ([`Self::set_ext_ifindex`]).
    pub fn enable_fast_path(&mut self) -> Result<()> {
        self.load_inside_tc()?;
        let mut a = Loaded::new(&mut self.ebpf).fast_path()?;
        a.set(nat_common::FAST_PATH_ON, 1, 0)
            .context("writing FAST_PATH")?;
        Ok(())
    }

    /// `FAST_PATH[FAST_PATH_EXT_IFINDEX]`: the external interface, which
    /// the agent always writes (NAT64 checks a packet's IPv4 twin against
    /// its MTU). An ifindex of the namespace the outbound NAT64 cases run
    /// in.
    pub fn set_ext_ifindex(&mut self, ifindex: u32) -> Result<()> {
        let mut a = Loaded::new(&mut self.ebpf).fast_path()?;
        a.set(nat_common::FAST_PATH_EXT_IFINDEX, ifindex, 0)
            .context("writing FAST_PATH")?;
        Ok(())
    }

    /// Adds an inside prefix (INTERNAL).
    pub fn add_internal(&mut self, net: Ipv4Addr, len: u32) -> Result<()> {
        let mut t = Loaded::new(&mut self.ebpf).internal()?;
        t.insert(&LpmKey::new(len, be(net)), 1, 0)
            .context("inserting into INTERNAL")?;
        Ok(())
    }

    /// Writes `keys[i] -> values[i]` into the hash table `table` opens
    /// (`LoadedRef::napt_out`, …) with BPF_MAP_UPDATE_BATCH.
    pub fn update_batch<'e, K: Pod, V: Pod>(
        &'e self,
        table: impl FnOnce(&LoadedRef<'e>) -> Result<Read<'e, K, V>>,
        keys: &[K],
        values: &[V],
    ) -> Result<()> {
        let m = table(&LoadedRef::new(&self.ebpf))?;
        let data = m.map();
        update_batch(data.fd().as_fd().as_raw_fd(), keys, values)
            .with_context(|| format!("filling {}", map_name(data)))
    }

    /// The kernel's accounting for the maps whose memory a binding costs:
    /// NAPT_OUT, NAPT_IN, SESSIONS, FILTER and HOST_PORTS.
    pub fn binding_memory(&self) -> Result<Vec<MapMemory>> {
        let t = LoadedRef::new(&self.ebpf);
        Ok(vec![
            map_memory(t.napt_out()?.map())?,
            map_memory(t.napt_in()?.map())?,
            map_memory(t.sessions()?.map())?,
            map_memory(t.filter()?.map())?,
            map_memory(t.host_ports()?.map())?,
        ])
    }

    /// What the block tables hold and cost (block allocation): blocks,
    /// hosts, and the kernel memory of BLOCKS and HOST_BLOCKS (not
    /// preallocated: their bucket arrays and entries).
    pub fn block_memory(&self) -> Result<serde_json::Value> {
        let t = LoadedRef::new(&self.ebpf);
        let (blocks, hosts) = (t.blocks()?, t.host_blocks()?);
        let held = blocks.keys().count();
        let listed = hosts.keys().count();
        let (b, h) = (map_memory(blocks.map())?, map_memory(hosts.map())?);
        Ok(serde_json::json!({
            "blocks": held,
            "hosts": listed,
            "blocks_memlock": b.memlock,
            "host_blocks_memlock": h.memlock,
        }))
    }

    /// All counters summed over the CPUs, indexed by [`Counter`].
    pub fn counters(&self) -> Result<[u64; COUNTER_COUNT as usize]> {
        let stats = LoadedRef::new(&self.ebpf).stats()?;
        let mut all = [0u64; COUNTER_COUNT as usize];
        for c in Counter::ALL {
            let v = stats.get(&(c as u32), 0).context("reading STATS")?;
            all[c as usize] = v.iter().sum();
        }
        Ok(all)
    }

    /// One BPF_PROG_TEST_RUN of `prog` on `frame`, `repeat` times.
    pub fn test_run(
        &self,
        prog: Prog,
        frame: &[u8],
        out: Option<&mut [u8]>,
        repeat: u32,
    ) -> Result<TestRunResult> {
        self.test_run_on(prog, frame, None, out, repeat)
    }

    /// The same with the packet arriving on the device `ifindex` of the
    /// calling thread's network namespace (`__sk_buff.ifindex` /
    /// `xdp_md.ingress_ifindex`; without one: that namespace's `lo`).
    pub fn test_run_on(
        &self,
        prog: Prog,
        frame: &[u8],
        ifindex: Option<u32>,
        out: Option<&mut [u8]>,
        repeat: u32,
    ) -> Result<TestRunResult> {
        let object = if Prog::BASELINE.contains(&prog) {
            &self.baseline
        } else {
            &self.ebpf
        };
        let p: &Program = object
            .program(prog.name())
            .ok_or_else(|| anyhow!("no program {}", prog.name()))?;
        let ctx = ifindex.map(|i| {
            if prog.is_xdp() {
                xdp_ctx(i, frame.len())
            } else {
                skb_ctx(i)
            }
        });
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: out,
            ctx_in: ctx.as_deref(),
            repeat,
            ..Default::default()
        };
        let res = if prog.is_xdp() {
            <&Xdp>::try_from(p)?.test_run(opts)
        } else {
            <&SchedClassifier>::try_from(p)?.test_run(opts)
        };
        res.with_context(|| format!("BPF_PROG_TEST_RUN of {}", prog.name()))
    }

    /// Gives the minimal NAT the flow `inside <-> public` of protocol
    /// `proto`: inbound public → inside, outbound inside → public.
    pub fn baseline_flow(
        &mut self,
        proto: u8,
        inside: (Ipv4Addr, u16),
        public: (Ipv4Addr, u16),
    ) -> Result<()> {
        let ep = |(addr, port): (Ipv4Addr, u16)| InsideEndpoint {
            addr: be(addr),
            port: port.to_be(),
            flags: 0,
        };
        let key = |e: InsideEndpoint| EndpointKey {
            addr: e.addr,
            port: e.port,
            proto,
            _pad: 0,
        };
        let (inside, public) = (ep(inside), ep(public));
        for (name, from, to) in [
            (MAP_BASELINE_IN, public, inside),
            (MAP_BASELINE_OUT, inside, public),
        ] {
            let map = self
                .baseline
                .map_mut(name)
                .ok_or_else(|| anyhow!("no map {name} in the baseline object"))?;
            let mut m: aya::maps::HashMap<_, EndpointKey, InsideEndpoint> =
                aya::maps::HashMap::try_from(map)?;
            m.insert(key(from), to, 0)
                .with_context(|| format!("writing {name}"))?;
        }
        Ok(())
    }

    /// How many entries the minimal NAT's outbound table holds.
    pub fn baseline_out_len(&self) -> Result<usize> {
        let map = self
            .baseline
            .map(MAP_BASELINE_OUT)
            .ok_or_else(|| anyhow!("no map {MAP_BASELINE_OUT} in the baseline object"))?;
        let m: aya::maps::HashMap<_, EndpointKey, InsideEndpoint> =
            aya::maps::HashMap::try_from(map)?;
        Ok(m.keys().count())
    }

    /// Gives the minimal NAT the bulk bindings of `e` (as [`Self::baseline_flow`]
    /// does one flow), with BPF_MAP_UPDATE_BATCH: its random-flow cases then
    /// look up tables as large as xnat's.
    pub fn baseline_bulk(&mut self, e: &Entries) -> Result<()> {
        // Outbound: inside endpoint -> public endpoint, held in the
        // minimal NAT's one value type.
        let public: Vec<InsideEndpoint> = e
            .inb
            .0
            .iter()
            .map(|k| InsideEndpoint {
                addr: k.addr,
                port: k.port,
                flags: 0,
            })
            .collect();
        for (name, keys, values) in [
            (MAP_BASELINE_IN, &e.inb.0, &e.inb.1),
            (MAP_BASELINE_OUT, &e.out.0, &public),
        ] {
            let map = self
                .baseline
                .map(name)
                .ok_or_else(|| anyhow!("no map {name} in the baseline object"))?;
            let m: aya::maps::HashMap<&MapData, EndpointKey, InsideEndpoint> =
                aya::maps::HashMap::try_from(map)?;
            update_batch(m.map().fd().as_fd().as_raw_fd(), keys, values)
                .with_context(|| format!("filling {name}"))?;
        }
        Ok(())
    }

    /// Pins the maps the expiry sweeper opens (`nat_userspace::agent::expiry`)
    /// under `dir`, which is created and removed again on drop.
    pub fn pin_binding_maps(&mut self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        self.pins = Some(dir.to_owned());
        // Pinned under their own names, where `Tables::at(dir)` opens them.
        for (name, map) in self.ebpf.maps() {
            if SWEEP_MAPS.contains(&name) {
                map.pin(dir.join(name))
                    .with_context(|| format!("pinning {name} in {}", dir.display()))?;
            }
        }
        // And the walk the sweep runs in the kernel.
        nat_userspace::loader::pin_expiry_walk(dir)?;
        Ok(())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(dir) = self.pins.take() {
            for name in SWEEP_MAPS {
                let _ = fs::remove_file(dir.join(name));
            }
            let _ = fs::remove_file(dir.join(nat_userspace::tables::pins::PROG_EXPIRE));
            if let Err(e) = fs::remove_dir(&dir) {
                eprintln!("xnat-bench: could not remove {}: {e}", dir.display());
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct MapMemory {
    pub name: String,
    pub max_entries: u64,
    pub memlock: u64,
}

/// A `struct xdp_md` for BPF_PROG_TEST_RUN: the whole frame as data,
/// arriving on `ifindex`, queue 0.
fn xdp_ctx(ifindex: u32, len: usize) -> Vec<u8> {
    let mut c = vec![0u8; 24];
    c[4..8].copy_from_slice(&(len as u32).to_ne_bytes()); // data_end
    c[12..16].copy_from_slice(&ifindex.to_ne_bytes()); // ingress_ifindex
    c
}

/// A `struct __sk_buff` for BPF_PROG_TEST_RUN with only `ingress_ifindex`
/// and `ifindex` set (offsets 36 and 40 of the UAPI struct): the skb's
/// device.
fn skb_ctx(ifindex: u32) -> Vec<u8> {
    let mut c = vec![0u8; 192];
    c[36..40].copy_from_slice(&ifindex.to_ne_bytes());
    c[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    c
}

/// An address as the maps hold it (network order in a native `u32`).
pub fn be(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

/// BPF_MAP_UPDATE_BATCH in chunks, through the agent's own batch code.
fn update_batch<K: Copy, V: Copy>(fd: RawFd, keys: &[K], values: &[V]) -> Result<()> {
    nat_userspace::tables::batch::update_all(fd, keys, values)
        .with_context(|| format!("BPF_MAP_UPDATE_BATCH of {} entries", keys.len()))
}

/// The kernel's accounting for the map `data` (from /proc/self/fdinfo).
fn map_memory(data: &MapData) -> Result<MapMemory> {
    let name = map_name(data);
    let fd = data.fd().as_fd().as_raw_fd();
    let text = fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .with_context(|| format!("reading fdinfo of {name}"))?;
    let field = |f: &str| -> Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(f).map(|v| v.trim().to_owned()))
            .ok_or_else(|| anyhow!("no `{f}` in fdinfo of {name}"))?
            .parse()
            .with_context(|| format!("parsing `{f}` of {name}"))
    };
    Ok(MapMemory {
        max_entries: field("max_entries:")?,
        memlock: field("memlock:")?,
        name,
    })
}
