//! The system under test: one loaded copy of xnat's BPF object (its own,
//! unpinned maps), configured from a model [`State`], run frame by frame
//! through `BPF_PROG_TEST_RUN`, with its maps read back into a [`State`]
//! for comparison and cleared between epochs.

use anyhow::{Context as _, Result, anyhow};
use aya::Ebpf;
use aya::maps::lpm_trie::Key as LpmKey;
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};
use nat_common::blocks::{MAP_BLOCKS, MAP_HOST_BLOCKS};
use nat_common::nat64::{
    MAP_NAT64_HOSTS, MAP_NAT64_IDS, NAT64_SLOT_HAIRPIN, NAT64_SLOT_IN, NAT64_SLOT_OUT,
    NAT64_SLOT_OUT_ERROR, NAT64_SLOT_OUT_NAT44,
};
use nat_common::stats::COUNTER_COUNT;
use nat_common::{
    EVENT_PORTS_EXHAUSTED, FRAG_HOLD_BYTES, MAP_FILTER, MAP_FRAGS_IN, MAP_FRAGS_OUT,
    MAP_HOST_PORTS, MAP_NAPT_IN, MAP_NAPT_OUT, MAP_SESSIONS, MAP_STATIC_IN, MAP_STATIC_OUT,
    NatConfig, PROG_EGRESS_TC, PROG_INGRESS_TC, PROG_INGRESS_XDP, PROG_INSIDE_TC, PROG_INSIDE_XDP,
    PROG_NAT64_HAIRPIN_TC, PROG_NAT64_IN_TC, PROG_NAT64_IN_XDP, PROG_NAT64_OUT_ERROR_TC,
    PROG_NAT64_OUT_NAT44_TC, PROG_NAT64_OUT_TC,
};
use nat_userspace::tables::{Loaded, LoadedRef};

use crate::bpf::{Hook, Outcome, Write, clear, try_all};
use crate::frame::ETH_HLEN;
use crate::model::{Capacity, Held, State};

/// Capacity of each dynamic table in the fuzzer's copy of the object.
const TABLE_SIZE: u32 = 1024;

/// The tables of the copy with tables small enough to fill: a few dozen
/// frames of new flows run into each limit. `NAPT_OUT` one smaller than
/// `NAPT_IN`, so either can be the one found full (`NAPT_IN` holds one
/// entry per mapping, plus any the sweep has yet to delete). `FILTER`
/// smaller than `SESSIONS`: its entries come with new sessions (remote
/// addresses only), which a full `SESSIONS` stops first. NAT64's two
/// tables room for three IPv6 hosts (a static NAT64 entry takes one).
pub const SMALL_TABLES: Capacity = Capacity {
    napt_out: 7,
    napt_in: 8,
    sessions: 4,
    filter: 2,
    nat64: 3,
};

pub struct Target {
    ebpf: Ebpf,
    capacity: Capacity,
    /// The device the inside programs' frames arrive on (see
    /// [`super::inside`]).
    inside_ifindex: u32,
    /// The device the XDP ingress program's frames arrive on.
    ingress_ifindex: u32,
}

impl Target {
    /// Loads a copy of the object with [`TABLE_SIZE`]-entry tables, or
    /// with `NAPT_OUT`, `NAPT_IN`, `SESSIONS` and `FILTER` as small as
    /// [`SMALL_TABLES`] says.
    pub fn load(small: bool) -> Result<Target> {
        // Small tables: the runner reads every map after every frame, and
        // the kernel finds a hash map's first key by scanning all its
        // buckets (~1 ms per frame at the default sizes). The fuzzer's
        // state never gets near TABLE_SIZE; full tables are what the
        // `small` copy is for.
        let capacity = if small {
            SMALL_TABLES
        } else {
            let n = TABLE_SIZE as usize;
            Capacity {
                napt_out: n,
                napt_in: n,
                sessions: n,
                filter: n,
                nat64: n,
            }
        };
        let mut loader = aya::EbpfLoader::new();
        for name in [
            MAP_HOST_PORTS,
            MAP_BLOCKS,
            MAP_HOST_BLOCKS,
            MAP_FRAGS_OUT,
            MAP_FRAGS_IN,
            MAP_STATIC_OUT,
            MAP_STATIC_IN,
        ] {
            loader.map_max_entries(name, TABLE_SIZE);
        }
        for (name, n) in [
            (MAP_NAPT_OUT, capacity.napt_out),
            (MAP_NAPT_IN, capacity.napt_in),
            (MAP_SESSIONS, capacity.sessions),
            (MAP_FILTER, capacity.filter),
            (MAP_NAT64_HOSTS, capacity.nat64),
            (MAP_NAT64_IDS, capacity.nat64),
        ] {
            loader.map_max_entries(name, n as u32);
        }
        let mut ebpf = crate::bpf::load_object(
            &mut loader,
            &[
                // NAT64's programs, which the others tail-call.
                PROG_NAT64_OUT_TC,
                PROG_NAT64_OUT_ERROR_TC,
                PROG_NAT64_OUT_NAT44_TC,
                PROG_NAT64_HAIRPIN_TC,
                PROG_NAT64_IN_TC,
                PROG_NAT64_IN_XDP,
                nat_common::PROG_NAT64_OUT_XDP,
                PROG_INGRESS_XDP,
                PROG_INSIDE_XDP,
                PROG_INGRESS_TC,
                PROG_EGRESS_TC,
                PROG_INSIDE_TC,
                nat_common::PROG_EXPIRE,
            ],
        )?;
        set_nat64_programs(&mut ebpf)?;
        Ok(Target {
            ebpf,
            capacity,
            inside_ifindex: 0,
            ingress_ifindex: 0,
        })
    }

    /// The capacities of this copy's tables.
    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// Writes the configuration, pool, inside prefixes and static maps of
    /// `st` (once, before the first epoch: these never shrink).
    pub fn configure(&mut self, st: &State) -> Result<()> {
        {
            let mut a = Loaded::new(&mut self.ebpf).pool()?;
            for (i, addr) in st.pool.iter().enumerate() {
                a.set(i as u32, *addr, 0)?;
            }
        }
        {
            // Numbered as reconcile numbers them (`napt_maps::internal_entries`).
            let mut t = Loaded::new(&mut self.ebpf).internal()?;
            let prefixes: Vec<(u32, u32)> = st
                .internal
                .iter()
                .map(|&(net, len)| (u32::from_be(net), len))
                .collect();
            for (net, len, offset) in crate::napt_maps::internal_entries(&prefixes) {
                t.insert(&LpmKey::new(len, net.to_be()), offset, 0)?;
            }
        }
        self.set_static(st)?;
        self.set_nat64(st)?;
        self.set_config(st.config)
    }

    /// Writes NAT64's prefix (`NAT64`; `enabled == 0`: off).
    pub fn set_nat64(&mut self, st: &State) -> Result<()> {
        let mut a = Loaded::new(&mut self.ebpf).nat64()?;
        Ok(a.set(0, st.nat64, 0)?)
    }

    /// Replaces the static 1:1 tables with `st`'s and sets STATIC_EMPTY as
    /// the control plane does (1 exactly when both are empty).
    pub fn set_static(&mut self, st: &State) -> Result<()> {
        clear(&mut self.ebpf, Loaded::static_out)?;
        clear(&mut self.ebpf, Loaded::static_in)?;
        put_all(&mut self.ebpf, Loaded::static_out, &st.static_out)?;
        put_all(&mut self.ebpf, Loaded::static_in, &st.static_in)?;
        let empty = st.static_out.is_empty() && st.static_in.is_empty();
        let mut a = Loaded::new(&mut self.ebpf).static_empty()?;
        Ok(a.set(0, empty as u32, 0)?)
    }

    pub fn set_config(&mut self, cfg: NatConfig) -> Result<()> {
        let mut a = Loaded::new(&mut self.ebpf).config()?;
        Ok(a.set(0, cfg, 0)?)
    }

    /// Empties every dynamic map, then writes `st`'s configuration, static
    /// tables and bindings (port forwards, at the start of an epoch).
    pub fn reset(&mut self, st: &State) -> Result<()> {
        clear(&mut self.ebpf, Loaded::frags_out)?;
        clear(&mut self.ebpf, Loaded::frags_in)?;
        clear(&mut self.ebpf, Loaded::frag_hold_out)?;
        clear(&mut self.ebpf, Loaded::frag_hold_in)?;
        self.set_config(st.config)?;
        self.set_static(st)?;
        self.set_nat64(st)?;
        super::inside::write(&mut self.ebpf, &st.gateway)?;
        self.inside_ifindex = st.gateway.inside_ifindex;
        self.ingress_ifindex = st.gateway.ingress_ifindex;
        self.set_bindings(st)
    }

    /// Replaces the mappings, sessions, filter entries, per-host port
    /// counts, port blocks and NAT64's stand-ins with `st`'s (what the
    /// agent's expiry sweep leaves, say); fragments are left as they are.
    pub fn set_bindings(&mut self, st: &State) -> Result<()> {
        clear(&mut self.ebpf, Loaded::napt_out)?;
        clear(&mut self.ebpf, Loaded::napt_in)?;
        clear(&mut self.ebpf, Loaded::sessions)?;
        clear(&mut self.ebpf, Loaded::filter)?;
        clear(&mut self.ebpf, Loaded::host_ports)?;
        clear(&mut self.ebpf, Loaded::blocks)?;
        clear(&mut self.ebpf, Loaded::host_blocks)?;
        clear(&mut self.ebpf, Loaded::nat64_hosts)?;
        clear(&mut self.ebpf, Loaded::nat64_ids)?;
        put_all(&mut self.ebpf, Loaded::nat64_ids, &st.nat64_ids)?;
        put_all(&mut self.ebpf, Loaded::nat64_hosts, &st.nat64_hosts)?;
        put_all(&mut self.ebpf, Loaded::napt_out, &st.napt_out)?;
        put_all(&mut self.ebpf, Loaded::napt_in, &st.napt_in)?;
        put_all(&mut self.ebpf, Loaded::sessions, &st.sessions)?;
        put_all(&mut self.ebpf, Loaded::filter, &st.filter)?;
        put_all(&mut self.ebpf, Loaded::host_ports, &st.host_ports)?;
        put_all(&mut self.ebpf, Loaded::blocks, &st.blocks)?;
        put_all(&mut self.ebpf, Loaded::host_blocks, &st.host_blocks)?;
        let mut n = Loaded::new(&mut self.ebpf).inbound_sessions()?;
        Ok(n.set(0, st.inbound_sessions, 0)?)
    }

    /// The dynamic maps' contents, into a copy of `like` (whose
    /// configuration and static maps are taken as they are).
    pub fn state(&self, like: &State) -> Result<State> {
        let mut st = like.clone();
        st.napt_out = try_all(&self.ebpf, LoadedRef::napt_out)?;
        st.napt_in = try_all(&self.ebpf, LoadedRef::napt_in)?;
        st.sessions = try_all(&self.ebpf, LoadedRef::sessions)?;
        st.filter = try_all(&self.ebpf, LoadedRef::filter)?;
        st.host_ports = try_all(&self.ebpf, LoadedRef::host_ports)?;
        st.blocks = try_all(&self.ebpf, LoadedRef::blocks)?;
        st.host_blocks = try_all(&self.ebpf, LoadedRef::host_blocks)?;
        let n = LoadedRef::new(&self.ebpf).inbound_sessions()?;
        st.inbound_sessions = n.get(&0, 0)?;
        st.nat64_hosts = try_all(&self.ebpf, LoadedRef::nat64_hosts)?;
        st.nat64_ids = try_all(&self.ebpf, LoadedRef::nat64_ids)?;
        // One map in the model: the key's direction tells the tables apart.
        st.frags = try_all(&self.ebpf, LoadedRef::frags_out)?;
        st.frags
            .extend(try_all::<_, _, Vec<_>>(&self.ebpf, LoadedRef::frags_in)?);
        let mut held: Vec<_> = try_all(&self.ebpf, LoadedRef::frag_hold_out)?;
        held.extend(try_all::<_, _, Vec<_>>(
            &self.ebpf,
            LoadedRef::frag_hold_in,
        )?);
        st.held = held
            .into_iter()
            .map(|(k, v)| {
                let len = (v.len as usize).min(FRAG_HOLD_BYTES);
                let held = Held {
                    seen: v.seen,
                    data: v.data[..len].to_vec(),
                };
                ((k.frag, k.slot), held)
            })
            .collect();
        Ok(st)
    }

    /// Runs `frame` once through `hook`'s program. Unlike
    /// [`crate::bpf::try_run`], the output may be much longer than the
    /// input: releasing held fragments turns a short first fragment into
    /// the last held one (up to a full 1500-byte datagram).
    pub fn run(&self, hook: Hook, frame: &[u8]) -> Result<Outcome> {
        let name = hook.program_name();
        let prog = self
            .ebpf
            .program(name)
            .ok_or_else(|| anyhow!("no program {name}"))?;
        let mut out = vec![0u8; frame.len().max(FRAG_HOLD_BYTES) + ETH_HLEN + 512];
        // The inside programs' frames arrive on the gateway's inside
        // interface (their FIB lookups depend on it); the external TC
        // ones' come from the test run's default device, `lo`, the XDP
        // ingress ones' from the external interface (see
        // `super::inside`).
        let ctx = match hook {
            Hook::InsideTc => Some(super::inside::skb_ctx(self.inside_ifindex)),
            Hook::InsideXdp => Some(super::inside::xdp_ctx(self.inside_ifindex, frame.len())),
            Hook::IngressXdp if self.ingress_ifindex != 0 => {
                Some(super::inside::xdp_ctx(self.ingress_ifindex, frame.len()))
            }
            _ => None,
        };
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: ctx.as_deref(),
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

    /// Pins every map of this copy in `dir` under its own name, as an
    /// attachment's are, so the agent's code (expiry, flush, reload) can
    /// open them ([`super::agent`]).
    pub fn pin_maps(&self, dir: &std::path::Path) -> Result<()> {
        // xnat's own maps (`ALL_MAPS`), as an attachment pins them: the
        // object's data sections (`.rodata.str1.2`: string constants of
        // the NAT64 code) are maps too, and frozen ones cannot be pinned.
        for (name, map) in self.ebpf.maps() {
            if !nat_common::ALL_MAPS.contains(&name) {
                continue;
            }
            map.pin(dir.join(name))
                .with_context(|| format!("pinning {name} in {}", dir.display()))?;
        }
        // And the expiry walk, on those maps, where the agent's sweep
        // finds it.
        nat_userspace::loader::pin_expiry_walk(dir)
    }

    /// `st` with the configuration, NAT64's prefix and static tables the
    /// maps hold (an agent's reload rewrites them); a problem if `STATIC_EMPTY` does not
    /// say whether both static tables are empty.
    pub fn read_settings(&self, st: &mut State) -> Result<Option<String>> {
        let cfg = LoadedRef::new(&self.ebpf).config()?;
        st.config = cfg.get(&0, 0)?;
        let nat64 = LoadedRef::new(&self.ebpf).nat64()?;
        st.nat64 = nat64.get(&0, 0)?;
        st.static_out = try_all(&self.ebpf, LoadedRef::static_out)?;
        st.static_in = try_all(&self.ebpf, LoadedRef::static_in)?;
        // The fast path's switch and the XDP redirect targets (a reload
        // writes them as its config has them).
        let fast = LoadedRef::new(&self.ebpf).fast_path()?;
        st.gateway.fast_path = fast.get(&nat_common::FAST_PATH_ON, 0)? != 0;
        let targets = LoadedRef::new(&self.ebpf).xdp_targets()?;
        let mut xdp: Vec<u32> = targets.keys().collect::<Result<_, _>>()?;
        xdp.sort_unstable();
        st.gateway.xdp_targets = xdp;
        let flag = LoadedRef::new(&self.ebpf).static_empty()?;
        let empty = st.static_out.is_empty() && st.static_in.is_empty();
        let said = flag.get(&0, 0)?;
        Ok((said != empty as u32)
            .then(|| format!("STATIC_EMPTY is {said} while the static tables are empty: {empty}")))
    }

    /// The TC program of `hook`, to run it on other skbs than the test
    /// run's (CHECKSUM_COMPLETE and CHECKSUM_PARTIAL: [`super::skb`]).
    pub fn tc_program(&self, hook: Hook) -> Result<&SchedClassifier> {
        crate::bpf::tc_program(&self.ebpf, hook)
    }

    pub fn tc_program_mut(&mut self, hook: Hook) -> Result<&mut SchedClassifier> {
        crate::bpf::tc_program_mut(&mut self.ebpf, hook)
    }

    pub fn counters(&self) -> [u64; COUNTER_COUNT as usize] {
        crate::bpf::counters(&self.ebpf)
    }

    /// Drains the EVENTS ring: the quotes of port-exhaustion events, and
    /// the kinds of any other records.
    pub fn events(&mut self) -> Result<Vec<Vec<u8>>> {
        let mut ring = Loaded::new(&mut self.ebpf).events()?;
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            let b: &[u8] = &item;
            let kind = u32::from_ne_bytes(b[0..4].try_into()?);
            if kind != EVENT_PORTS_EXHAUSTED {
                out.push(format!("unexpected event kind {kind}").into_bytes());
                continue;
            }
            let n = u32::from_ne_bytes(b[4..8].try_into()?) as usize;
            let at = std::mem::offset_of!(nat_common::Event, quote);
            out.push(b[at..(at + n).min(b.len())].to_vec());
        }
        Ok(out)
    }
}

/// Puts NAT64's programs into the program arrays the others tail-call
/// them from, in the slots the loader uses (nat-userspace's `load_nat64`),
/// so that an IPv6 frame on `xnat_inside_tc` or a packet NAT44 translates
/// to a stand-in runs them inside the same test run.
fn set_nat64_programs(ebpf: &mut Ebpf) -> Result<()> {
    for (name, slot, xdp) in [
        (PROG_NAT64_OUT_TC, NAT64_SLOT_OUT, false),
        (PROG_NAT64_OUT_ERROR_TC, NAT64_SLOT_OUT_ERROR, false),
        (PROG_NAT64_OUT_NAT44_TC, NAT64_SLOT_OUT_NAT44, false),
        (PROG_NAT64_HAIRPIN_TC, NAT64_SLOT_HAIRPIN, false),
        (PROG_NAT64_IN_TC, NAT64_SLOT_IN, false),
        (PROG_NAT64_IN_XDP, NAT64_SLOT_IN, true),
        (nat_common::PROG_NAT64_OUT_XDP, NAT64_SLOT_OUT, true),
    ] {
        let prog = ebpf
            .program(name)
            .ok_or_else(|| anyhow!("no program {name}"))?;
        let fd = if xdp {
            <&Xdp>::try_from(prog)?.fd()?.try_clone()?
        } else {
            <&SchedClassifier>::try_from(prog)?.fd()?.try_clone()?
        };
        let mut array = if xdp {
            Loaded::new(ebpf).nat64_xdp_progs()?
        } else {
            Loaded::new(ebpf).nat64_tc_progs()?
        };
        array
            .set(slot, &fd, 0)
            .with_context(|| format!("putting {name} into its program array"))?;
    }
    Ok(())
}

/// Writes every entry of `entries` into the table `table` opens.
fn put_all<'e, K: aya::Pod, V: aya::Pod>(
    ebpf: &'e mut Ebpf,
    table: impl FnOnce(Loaded<'e>) -> Result<Write<'e, K, V>>,
    entries: &std::collections::HashMap<K, V>,
) -> Result<()> {
    let mut m = table(Loaded::new(ebpf))?;
    let name = crate::bpf::map_name(aya::maps::IterableMap::map(&m));
    for (k, v) in entries {
        m.insert(k, v, 0)
            .with_context(|| format!("inserting into {name}"))?;
    }
    Ok(())
}
