//! Packet tests (BPF_PROG_TEST_RUN) of the fast path (`--fast-path`,
//! `FAST_PATH[FAST_PATH_ON] = 1`): frames built from scratch run through the
//! compiled programs with prepared maps; every output byte and checksum is
//! compared with a frame built from scratch.
//!
//! Besides the switch, the fast path reads two things the agent writes at
//! attach: `FAST_PATH[FAST_PATH_EXT_IFINDEX]`, the external interface (the
//! outbound fast path only takes packets the FIB routes there; 0 disables
//! it), and `XDP_TARGETS`, the devices the XDP inbound fast path may
//! redirect to (the agent lists the physical `--inside` NICs; a packet
//! routed elsewhere goes to the stack translated). [`FibNs::ready`] sets
//! both as the agent would for [`FibNs`] if its inside interfaces were
//! physical NICs: `ext0`, and `in0`, `in1`, `in2`.
//!
//! The programs' `bpf_fib_lookup` uses the routing and neighbour tables of
//! the network namespace the test run happens in, and the device the test
//! run names as the packet's ingress device (`xdp_md.ingress_ifindex`,
//! `__sk_buff.ifindex`). So every run happens on a thread inside a scratch
//! namespace:
//!
//! - [`empty_ns`]: only `lo`, no routes, forwarding off. Every lookup
//!   fails: the programs must fall back — inbound, the translated packet
//!   goes to the stack (`XDP_PASS` / `TC_ACT_OK`); outbound, the inside
//!   program leaves the packet untouched — and the fast-path counters stay 0.
//! - [`FibNs`]: the gateway's interfaces, routes and permanent neighbour
//!   entries, forwarding on. Lookups succeed: inbound and outbound packets
//!   of established flows are translated, their TTL decremented (IPv4
//!   checksum fixed), MAC addresses set from the FIB and neighbour table,
//!   and redirected (`XDP_REDIRECT` / `TC_ACT_REDIRECT`; a test run does
//!   not transmit). Unresolved neighbours, TTL ≤ 1, packets too big for the
//!   egress device's or route's MTU, new flows, ICMP, fragments, XDP
//!   redirects to a device not in `XDP_TARGETS` and outbound packets not
//!   routed to the external interface take the normal path.
//!
//! ```text
//!  FibNs:  in0 10.0.0.1/24   S 10.0.0.7 = 203.0.113.7 (static), A 10.0.0.2 (NAPT)
//!                            N 10.0.0.9 = 203.0.113.9 (static, no neighbour entry)
//!          in1 10.0.1.1/24   M 10.0.1.2 = 203.0.113.12 (static), MTU 1280
//!          in2 10.0.2.1/32 + route 10.0.2.0/24 dev in2 mtu lock 1280 (device 1500)
//!                            Q 10.0.2.2 = 203.0.113.22 (static)
//!          ext0 192.0.2.1/24 default via 192.0.2.2 (router, permanent neighbour)
//!                            198.51.100.0/24 via 192.0.2.2 mtu lock 1280
//! ```
//!
//! Every test loads its own instance of the object (its own maps) and its
//! own namespace, so the tests may run in parallel.

use std::net::Ipv4Addr;

use anyhow::{Context as _, Result, anyhow};
use aya::Ebpf;
use aya::maps::lpm_trie::Key as LpmKey;
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};
use nat_common::stats::COUNTER_COUNT;
use nat_common::{
    Counter, FAST_PATH_EXT_IFINDEX, FAST_PATH_ON, MAP_XDP_TARGETS, PROG_INGRESS_TC,
    PROG_INGRESS_XDP, PROG_INSIDE_TC, PROG_INSIDE_XDP, Session,
};
use nat_userspace::settings::napt::Filtering;
use nat_userspace::tables::{Loaded, LoadedRef};
use xnat_tests::bpf::{self, Outcome, Read, TC_ACT_OK, Write, XDP_PASS, require_root};
use xnat_tests::frame::{
    self, IP_MF, Icmp, Packet, Tcp, Udp, assert_frame_eq, check_checksums, proto,
};
use xnat_tests::napt_maps::{
    Endpoint, be, dataplane_now_ns, default_config, first_session, session_key,
};
use xnat_tests::netns::Netns;

const XDP_REDIRECT: u32 = 4;
const TC_ACT_REDIRECT: u32 = 7;

/// Inside hosts (see the module docs).
const S: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const N: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const M: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const Q: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const PUB_S: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const PUB_N: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
const PUB_M: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 12);
const PUB_Q: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 22);
/// The NAPT pool.
const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The gateway's own addresses.
const GW_IN0: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const GW_EXT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The next hop outside.
const RTR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// On the external link, never resolved.
const UNRESOLVED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
/// A server behind the default route.
const SRV: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
/// A server behind the route with MTU 1280.
const SRV_SMALL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

const MAC_EXT: [u8; 6] = [0x02, 0, 0, 0, 0xe0, 0x01];
const MAC_RTR: [u8; 6] = [0x02, 0, 0, 0, 0xe0, 0x02];
const MAC_IN0: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
const MAC_IN1: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x01];
const MAC_IN2: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x01];
const MAC_S: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x07];
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x02];
const MAC_M: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x02];
const MAC_Q: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x02];

const UDP: u8 = proto::UDP;
const TCP: u8 = proto::TCP;

// ---------------------------------------------------------------- loader

/// Which program a frame runs through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prog {
    /// `xnat_ingress_xdp` on the external interface.
    InXdp,
    /// `xnat_ingress_tc` on the external interface.
    InTc,
    /// `xnat_inside_tc` on the inside interfaces.
    Inside,
    /// `xnat_inside_xdp` on the inside interfaces (`--inside-hook xdp`).
    InsideXdp,
}

impl Prog {
    const INGRESS: [Prog; 2] = [Prog::InXdp, Prog::InTc];

    fn name(self) -> &'static str {
        match self {
            Prog::InXdp => PROG_INGRESS_XDP,
            Prog::InTc => PROG_INGRESS_TC,
            Prog::Inside => PROG_INSIDE_TC,
            Prog::InsideXdp => PROG_INSIDE_XDP,
        }
    }

    /// Verdict for "continue to the stack".
    fn pass(self) -> u32 {
        match self {
            Prog::InXdp | Prog::InsideXdp => XDP_PASS,
            _ => TC_ACT_OK,
        }
    }

    /// Verdict for "redirected".
    fn redirect(self) -> u32 {
        match self {
            Prog::InXdp | Prog::InsideXdp => XDP_REDIRECT,
            _ => TC_ACT_REDIRECT,
        }
    }
}

/// One loaded instance of xnat's BPF object: NAPT on (pool [`POOL`],
/// inside 10.0.0.0/8, endpoint-independent filtering), static mappings for
/// S, N, M and Q, and the fast path on or off. No external ifindex and no
/// XDP targets until set ([`FibNs::ready`]).
struct Fp {
    ebpf: Ebpf,
}

impl Fp {
    /// Loads the object with the programs `progs`; fast path `fast`.
    fn new(progs: &[Prog], fast: bool) -> Fp {
        require_root();
        let mut fp =
            Self::try_load(progs).unwrap_or_else(|e| panic!("loading xnat's BPF object: {e:#}"));
        let mut cfg = default_config();
        cfg.filtering = Filtering::EndpointIndependent.code();
        cfg.pool_len = 1;
        {
            let mut a = Loaded::new(&mut fp.ebpf).config().unwrap();
            a.set(0, cfg, 0).expect("CONFIG");
        }
        {
            let mut a = Loaded::new(&mut fp.ebpf).pool().unwrap();
            a.set(0, be(POOL), 0).expect("POOL");
        }
        {
            let mut t = Loaded::new(&mut fp.ebpf).internal().unwrap();
            t.insert(&LpmKey::new(8, be(Ipv4Addr::new(10, 0, 0, 0))), 1, 0)
                .expect("INTERNAL");
        }
        for (private, public) in [(S, PUB_S), (N, PUB_N), (M, PUB_M), (Q, PUB_Q)] {
            fp.put(Loaded::static_out, be(private), be(public));
            fp.put(Loaded::static_in, be(public), be(private));
        }
        fp.set_fast_path(fast);
        fp
    }

    fn try_load(progs: &[Prog]) -> Result<Fp> {
        let mut ebpf = aya::EbpfLoader::new()
            .load(nat_userspace::ebpf_object())
            .context("EbpfLoader::load")?;
        for p in progs {
            let name = p.name();
            let prog = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("no program {name}"))?;
            if matches!(p, Prog::InXdp | Prog::InsideXdp) {
                let x: &mut Xdp = prog.try_into()?;
                x.load().with_context(|| format!("loading {name}"))?;
            } else {
                let c: &mut SchedClassifier = prog.try_into()?;
                c.load().with_context(|| format!("loading {name}"))?;
            }
        }
        Ok(Fp { ebpf })
    }

    fn set_fast_path(&mut self, on: bool) {
        let mut a = Loaded::new(&mut self.ebpf).fast_path().unwrap();
        a.set(FAST_PATH_ON, u32::from(on), 0).expect("FAST_PATH");
    }

    /// `FAST_PATH[FAST_PATH_EXT_IFINDEX]`: the external interface (0: none).
    fn set_ext_ifindex(&mut self, ifindex: u32) {
        let mut a = Loaded::new(&mut self.ebpf).fast_path().unwrap();
        a.set(FAST_PATH_EXT_IFINDEX, ifindex, 0).expect("FAST_PATH");
    }

    /// Adds `ifindex` to `XDP_TARGETS` (key = value = ifindex, as the agent
    /// does). The kernel resolves the device in the caller's namespace:
    /// call it inside the namespace the device lives in.
    fn add_xdp_target(&mut self, ifindex: u32) {
        let mut m = Loaded::new(&mut self.ebpf).xdp_targets().unwrap();
        m.insert(ifindex, ifindex, None, 0)
            .unwrap_or_else(|e| panic!("inserting {ifindex} into {MAP_XDP_TARGETS}: {e}"));
    }

    fn remove_xdp_target(&mut self, ifindex: u32) {
        let mut m = Loaded::new(&mut self.ebpf).xdp_targets().unwrap();
        m.remove(ifindex)
            .unwrap_or_else(|e| panic!("removing {ifindex} from {MAP_XDP_TARGETS}: {e}"));
    }

    fn put<'e, K: aya::Pod, V: aya::Pod>(
        &'e mut self,
        table: impl FnOnce(Loaded<'e>) -> Result<Write<'e, K, V>>,
        k: K,
        v: V,
    ) {
        bpf::put(&mut self.ebpf, table, k, v);
    }

    /// Every entry of the hash map `table` opens as (key bytes, value
    /// bytes), sorted.
    fn snapshot<'e, K: aya::Pod, V: aya::Pod>(
        &'e self,
        table: impl FnOnce(&LoadedRef<'e>) -> Result<Read<'e, K, V>>,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        fn bytes<T: aya::Pod>(v: &T) -> Vec<u8> {
            // SAFETY: Pod values read back from the kernel: plain bytes.
            unsafe {
                std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()).to_vec()
            }
        }
        let mut v: Vec<_> = bpf::all(&self.ebpf, table)
            .iter()
            .map(|(k, v)| (bytes(k), bytes(v)))
            .collect();
        v.sort();
        v
    }

    /// A NAPT mapping `inside ↔ public` (both directions) holding, as the
    /// data plane makes it, its session from `inside` to `remote` as its
    /// first.
    fn add_flow(&mut self, inside: Endpoint, public: Endpoint, remote: (Ipv4Addr, u16)) {
        let now = dataplane_now_ns();
        let mut m = public.as_mapping(0, now, now);
        m.first = first_session(remote, now, 0);
        self.put(Loaded::napt_out, inside.key(), m);
        self.put(Loaded::napt_in, public.key(), inside.as_inside(0));
    }

    /// A NAPT mapping `inside ↔ public` whose first session has expired
    /// (its slot empty) and whose session from `inside` to `remote` is in
    /// SESSIONS.
    fn add_flow_in_sessions(
        &mut self,
        inside: Endpoint,
        public: Endpoint,
        remote: (Ipv4Addr, u16),
    ) {
        let now = dataplane_now_ns();
        self.put(
            Loaded::napt_out,
            inside.key(),
            public.as_mapping(0, now, now),
        );
        self.put(Loaded::napt_in, public.key(), inside.as_inside(0));
        self.add_session(inside, public, remote);
    }

    fn add_session(&mut self, inside: Endpoint, public: Endpoint, remote: (Ipv4Addr, u16)) {
        let now = dataplane_now_ns();
        let s = Session {
            created: now,
            last_seen: now,
            public_addr: be(public.addr),
            public_port: public.port.to_be(),
            ..Default::default()
        };
        self.put(
            Loaded::sessions,
            session_key(inside.proto, (inside.addr, inside.port), remote),
            s,
        );
    }

    /// NAPT_OUT, NAPT_IN and SESSIONS, entries and values (timestamps and
    /// per-session counters included).
    fn napt_state(&self) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        vec![
            self.snapshot(LoadedRef::napt_out),
            self.snapshot(LoadedRef::napt_in),
            self.snapshot(LoadedRef::sessions),
        ]
    }

    /// Runs `frame` through `prog` once; `ifindex` (if any) is the ingress
    /// device (`xdp_md.ingress_ifindex` / `__sk_buff.ifindex`). Runs on the
    /// calling thread: call it inside the namespace whose FIB is meant.
    fn run(&self, prog: Prog, frame: &[u8], ifindex: Option<u32>) -> Outcome {
        let name = prog.name();
        let p = self.ebpf.program(name).expect(name);
        let ctx = ifindex.map(|i| match prog {
            Prog::InXdp | Prog::InsideXdp => xdp_ctx(i, frame.len()),
            _ => skb_ctx(i),
        });
        let mut out = vec![0u8; frame.len() + 512];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: ctx.as_deref(),
            repeat: 1,
            ..Default::default()
        };
        let res = match prog {
            Prog::InXdp | Prog::InsideXdp => <&Xdp>::try_from(p).unwrap().test_run(opts),
            _ => <&SchedClassifier>::try_from(p).unwrap().test_run(opts),
        }
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN of {name}: {e}"));
        out.truncate(res.data_size_out as usize);
        Outcome {
            verdict: res.return_value,
            data: out,
        }
    }

    fn counters(&self) -> [u64; COUNTER_COUNT as usize] {
        let stats = LoadedRef::new(&self.ebpf).stats().unwrap();
        let mut all = [0u64; COUNTER_COUNT as usize];
        for c in Counter::ALL {
            all[c as usize] = stats.get(&(c as u32), 0).expect("STATS").iter().sum();
        }
        all
    }

    fn counter(&self, c: Counter) -> u64 {
        self.counters()[c as usize]
    }

    /// (fast_path_inbound, fast_path_outbound).
    fn fast(&self) -> (u64, u64) {
        let c = self.counters();
        (
            c[Counter::FastPathInbound as usize],
            c[Counter::FastPathOutbound as usize],
        )
    }
}

/// A `struct xdp_md` for BPF_PROG_TEST_RUN: the whole frame as data, the
/// ingress device `ifindex`, queue 0.
fn xdp_ctx(ifindex: u32, len: usize) -> Vec<u8> {
    let mut c = vec![0u8; 24];
    c[4..8].copy_from_slice(&(len as u32).to_ne_bytes()); // data_end
    c[12..16].copy_from_slice(&ifindex.to_ne_bytes()); // ingress_ifindex
    c
}

/// A `struct __sk_buff` for BPF_PROG_TEST_RUN with only `ingress_ifindex`
/// and `ifindex` set (offsets 36 and 40 of the UAPI struct).
fn skb_ctx(ifindex: u32) -> Vec<u8> {
    let mut c = vec![0u8; 192];
    c[36..40].copy_from_slice(&ifindex.to_ne_bytes());
    c[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    c
}

// ---------------------------------------------------------------- namespaces

/// A scratch namespace with only `lo`: no routes, forwarding off.
fn empty_ns(tag: &str) -> Netns {
    require_root();
    Netns::create(format!("xf{}-{tag}", std::process::id()))
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The gateway's interfaces, routes and neighbours (see the module docs).
struct FibNs {
    ns: Netns,
    ext0: u32,
    in0: u32,
    in1: u32,
    in2: u32,
}

impl FibNs {
    fn new(tag: &str) -> FibNs {
        let ns = empty_ns(tag);
        for (dev, m) in [
            ("ext0", MAC_EXT),
            ("in0", MAC_IN0),
            ("in1", MAC_IN1),
            ("in2", MAC_IN2),
        ] {
            let peer = format!("{dev}p");
            ns.ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer]);
            ns.ip(&["link", "set", dev, "address", &mac_str(m)]);
            ns.ip(&["link", "set", &peer, "up"]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        ns.ip(&["link", "set", "in1", "mtu", "1280"]);
        ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "ext0"]);
        ns.ip(&["addr", "add", "10.0.0.1/24", "dev", "in0"]);
        ns.ip(&["addr", "add", "10.0.1.1/24", "dev", "in1"]);
        ns.ip(&["addr", "add", "10.0.2.1/32", "dev", "in2"]);
        ns.ip(&[
            "route",
            "add",
            "10.0.2.0/24",
            "dev",
            "in2",
            "src",
            "10.0.2.1",
            "mtu",
            "lock",
            "1280",
        ]);
        ns.ip(&["route", "add", "default", "via", "192.0.2.2"]);
        ns.ip(&[
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            "192.0.2.2",
            "mtu",
            "lock",
            "1280",
        ]);
        for (host, m, dev) in [
            (RTR, MAC_RTR, "ext0"),
            (S, MAC_S, "in0"),
            (A, MAC_A, "in0"),
            (M, MAC_M, "in1"),
            (Q, MAC_Q, "in2"),
        ] {
            ns.ip(&[
                "neigh",
                "replace",
                &host.to_string(),
                "lladdr",
                &mac_str(m),
                "dev",
                dev,
                "nud",
                "permanent",
            ]);
        }
        ns.sysctl("net.ipv4.ip_forward", "1");
        let idx = |dev: &str| -> u32 {
            let out = ns.ip(&["-o", "link", "show", "dev", dev]);
            out.split(':')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("no ifindex in {out:?}"))
        };
        let (ext0, in0, in1, in2) = (idx("ext0"), idx("in0"), idx("in1"), idx("in2"));
        FibNs {
            ns,
            ext0,
            in0,
            in1,
            in2,
        }
    }

    /// What the agent would write for this gateway with physical inside
    /// NICs: ext0 as the external interface, in0, in1 and in2 as XDP targets.
    fn ready(&self, fp: &mut Fp) {
        fp.set_ext_ifindex(self.ext0);
        self.add_xdp_targets(fp, &[self.in0, self.in1, self.in2]);
    }

    /// Adds `ifindexes` (devices of this namespace) to `XDP_TARGETS`.
    fn add_xdp_targets(&self, fp: &mut Fp, ifindexes: &[u32]) {
        self.ns.in_ns(|| {
            for i in ifindexes {
                fp.add_xdp_target(*i);
            }
        });
    }

    /// Runs `frame` through an ingress program as if it came in on ext0.
    fn inbound(&self, fp: &Fp, prog: Prog, frame: &[u8]) -> Outcome {
        self.ns.in_ns(|| fp.run(prog, frame, Some(self.ext0)))
    }

    /// Runs `frame` through `xnat_inside_tc` as if it came in on `ifindex`.
    fn outbound_on(&self, fp: &Fp, ifindex: u32, frame: &[u8]) -> Outcome {
        self.ns.in_ns(|| fp.run(Prog::Inside, frame, Some(ifindex)))
    }

    /// Runs `frame` through `xnat_inside_xdp` as if it came in on in0.
    fn outbound_xdp(&self, fp: &Fp, frame: &[u8]) -> Outcome {
        self.ns
            .in_ns(|| fp.run(Prog::InsideXdp, frame, Some(self.in0)))
    }

    /// Runs `frame` through `xnat_inside_tc` as if it came in on in0.
    fn outbound(&self, fp: &Fp, frame: &[u8]) -> Outcome {
        self.outbound_on(fp, self.in0, frame)
    }
}

// ---------------------------------------------------------------- helpers

/// `frame` with its MAC addresses replaced (what a redirect after a FIB
/// lookup leaves).
fn with_macs(mut frame: Vec<u8>, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame
}

fn verdict_name(v: u32, prog: Prog) -> String {
    let xdp = matches!(prog, Prog::InXdp | Prog::InsideXdp);
    let n = match (xdp, v) {
        (true, 0) => "XDP_ABORTED",
        (true, 1) => "XDP_DROP",
        (true, 2) => "XDP_PASS",
        (true, 3) => "XDP_TX",
        (true, 4) => "XDP_REDIRECT",
        (false, 0) => "TC_ACT_OK",
        (false, 2) => "TC_ACT_SHOT",
        (false, 7) => "TC_ACT_REDIRECT",
        _ => "?",
    };
    format!("{n} ({v})")
}

/// Asserts verdict `want` and output `expected` (checksums validated too).
#[track_caller]
fn expect(what: &str, prog: Prog, got: &Outcome, want: u32, expected: &[u8]) {
    assert_eq!(
        got.verdict,
        want,
        "{what} ({}): verdict {}, want {}",
        prog.name(),
        verdict_name(got.verdict, prog),
        verdict_name(want, prog)
    );
    check_checksums(&got.data).unwrap_or_else(|e| panic!("{what} ({}): {e}", prog.name()));
    assert_frame_eq(&format!("{what} ({})", prog.name()), &got.data, expected);
}

fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), data: &[u8]) -> Packet {
    Packet::udp(src.0, dst.0, Udp::new(src.1, dst.1, data))
}

fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), data: &[u8]) -> Packet {
    Packet::tcp(src.0, dst.0, Tcp::data(src.1, dst.1, data))
}

fn ep(addr: Ipv4Addr, port: u16, proto: u8) -> Endpoint {
    Endpoint::new(addr, port, proto)
}

/// An inbound case: (what, the packet from outside, the packet translated
/// for the inside host, that host's MAC, the gateway's MAC on its link).
type InboundCase = (&'static str, Packet, Packet, [u8; 6], [u8; 6]);

/// Inbound packets of established flows and what they become.
fn inbound_cases() -> Vec<InboundCase> {
    vec![
        (
            "static UDP",
            udp((SRV, 53), (PUB_S, 40000), b"static inbound udp"),
            udp((SRV, 53), (S, 40000), b"static inbound udp"),
            MAC_S,
            MAC_IN0,
        ),
        (
            "static TCP",
            tcp((SRV, 443), (PUB_S, 40001), b"static inbound tcp"),
            tcp((SRV, 443), (S, 40001), b"static inbound tcp"),
            MAC_S,
            MAC_IN0,
        ),
        (
            "NAPT UDP",
            udp((SRV, 53), (POOL, 41000), b"napt inbound udp"),
            udp((SRV, 53), (A, 40000), b"napt inbound udp"),
            MAC_A,
            MAC_IN0,
        ),
        (
            "NAPT TCP",
            tcp((SRV, 443), (POOL, 41001), b"napt inbound tcp"),
            tcp((SRV, 443), (A, 40001), b"napt inbound tcp"),
            MAC_A,
            MAC_IN0,
        ),
        (
            "NAPT UDP, session in SESSIONS",
            udp((SRV, 53), (POOL, 41002), b"napt inbound udp"),
            udp((SRV, 53), (A, 40002), b"napt inbound udp"),
            MAC_A,
            MAC_IN0,
        ),
    ]
}

/// An [`Fp`] with the NAPT flows of [`inbound_cases`] and
/// [`outbound_cases`]: A:40000/udp ↔ POOL:41000 and A:40001/tcp ↔
/// POOL:41001, each with its session to the server as its mapping's first,
/// and A:40002/udp ↔ POOL:41002 with its session to the server in SESSIONS
/// (the mapping's first session expired).
fn with_flows(progs: &[Prog], fast: bool) -> Fp {
    let mut fp = Fp::new(progs, fast);
    fp.add_flow(ep(A, 40000, UDP), ep(POOL, 41000, UDP), (SRV, 53));
    fp.add_flow(ep(A, 40001, TCP), ep(POOL, 41001, TCP), (SRV, 443));
    fp.add_flow_in_sessions(ep(A, 40002, UDP), ep(POOL, 41002, UDP), (SRV, 53));
    fp
}

/// Outbound packets of established flows and what they become on the
/// external link: (what, packet from the inside host, translated packet).
fn outbound_cases() -> Vec<(&'static str, Packet, Packet)> {
    vec![
        (
            "static UDP",
            udp((S, 40000), (SRV, 53), b"static outbound udp"),
            udp((PUB_S, 40000), (SRV, 53), b"static outbound udp"),
        ),
        (
            "static TCP",
            tcp((S, 40001), (SRV, 443), b"static outbound tcp"),
            tcp((PUB_S, 40001), (SRV, 443), b"static outbound tcp"),
        ),
        (
            "NAPT UDP",
            udp((A, 40000), (SRV, 53), b"napt outbound udp"),
            udp((POOL, 41000), (SRV, 53), b"napt outbound udp"),
        ),
        (
            "NAPT TCP",
            tcp((A, 40001), (SRV, 443), b"napt outbound tcp"),
            tcp((POOL, 41001), (SRV, 443), b"napt outbound tcp"),
        ),
        (
            "NAPT UDP, session in SESSIONS",
            udp((A, 40002), (SRV, 53), b"napt outbound udp"),
            udp((POOL, 41002), (SRV, 53), b"napt outbound udp"),
        ),
    ]
}

/// Runs every packet of [`inbound_cases`] through `prog` with `run` and
/// checks that it comes out translated, TTL and MACs untouched, with the
/// verdict "to the stack", and that IngressTranslated counts it.
#[track_caller]
fn inbound_cases_pass_translated(fp: &Fp, prog: Prog, when: &str, run: impl Fn(&[u8]) -> Outcome) {
    for (what, input, translated, _, _) in inbound_cases() {
        let what = format!("{what}, {when}");
        let before = fp.counter(Counter::IngressTranslated);
        let out = run(&input.frame());
        expect(&what, prog, &out, prog.pass(), &translated.frame());
        assert_eq!(
            fp.counter(Counter::IngressTranslated),
            before + 1,
            "{what} ({}): not translated",
            prog.name()
        );
    }
}

/// Runs every packet of [`inbound_cases`] through `prog` with `run` and
/// checks that it comes out translated, TTL 64 → 63, with the MACs of the
/// inside link, redirected, each counted as one more fast inbound packet
/// (`n` counts them).
#[track_caller]
fn inbound_cases_redirected(
    fp: &Fp,
    prog: Prog,
    n: &mut u64,
    when: &str,
    run: impl Fn(&[u8]) -> Outcome,
) {
    for (what, input, translated, host_mac, gw_mac) in inbound_cases() {
        let what = format!("{what}, {when}");
        let out = run(&input.frame());
        let want = with_macs(translated.with_ttl(63).frame(), host_mac, gw_mac);
        expect(&what, prog, &out, prog.redirect(), &want);
        *n += 1;
        assert_eq!(fp.fast(), (*n, 0), "{what} ({})", prog.name());
    }
}

/// Runs every packet of [`outbound_cases`] through `prog` with `run` and
/// checks that it comes out untouched with the verdict "continue" (to the
/// stack, or for XDP to the TC program).
#[track_caller]
fn outbound_cases_untouched(prog: Prog, when: &str, run: impl Fn(&[u8]) -> Outcome) {
    for (what, input, _) in outbound_cases() {
        let frame = input.frame();
        let out = run(&frame);
        expect(&format!("{what}, {when}"), prog, &out, prog.pass(), &frame);
    }
}

/// Runs every packet of [`outbound_cases`] through `prog` with `run` and
/// checks that it comes out translated, TTL 64 → 63, with the MACs of the
/// external link, redirected, each counted as one more fast outbound and
/// one more translated egress packet (`n` counts them).
#[track_caller]
fn outbound_cases_redirected(
    fp: &Fp,
    prog: Prog,
    n: &mut u64,
    when: &str,
    run: impl Fn(&[u8]) -> Outcome,
) {
    for (what, input, translated) in outbound_cases() {
        let what = format!("{what}, {when}");
        let out = run(&input.frame());
        let want = with_macs(translated.with_ttl(63).frame(), MAC_RTR, MAC_EXT);
        expect(&what, prog, &out, prog.redirect(), &want);
        *n += 1;
        assert_eq!(fp.fast(), (0, *n), "{what}");
        assert_eq!(fp.counter(Counter::EgressTranslated), *n, "{what}");
    }
}

/// After packets the fast path had to leave alone: no fast-path packet,
/// nothing translated outbound, NAPT_OUT, NAPT_IN and SESSIONS still
/// `state`.
#[track_caller]
fn assert_nothing_outbound(fp: &Fp, state: &[Vec<(Vec<u8>, Vec<u8>)>], when: &str) {
    assert_eq!(fp.fast(), (0, 0), "{when}: fast-path counters");
    assert_eq!(
        fp.counter(Counter::EgressTranslated),
        0,
        "{when}: translated outbound"
    );
    assert_eq!(
        fp.napt_state(),
        state,
        "{when}: NAPT_OUT / NAPT_IN / SESSIONS changed"
    );
}

// ================================================================ no route

/// No route at all: every inbound packet of an established flow is still
/// translated and goes to the stack (`XDP_PASS` / `TC_ACT_OK`), unchanged
/// otherwise (TTL, MACs); the fast-path counters stay 0. (`lo`, the only
/// device, is an XDP target here, so only the missing route keeps XDP from
/// redirecting.)
#[test]
fn without_a_route_inbound_passes_translated() {
    let ns = empty_ns("nrin");
    let mut fp = with_flows(&Prog::INGRESS, true);
    ns.in_ns(|| fp.add_xdp_target(1));
    for prog in Prog::INGRESS {
        inbound_cases_pass_translated(&fp, prog, "no route", |f| {
            ns.in_ns(|| fp.run(prog, f, None))
        });
    }
    assert_eq!(fp.fast(), (0, 0), "fast-path counters");
}

/// No route at all: the inside program leaves outbound packets of
/// established flows untouched (the stack routes them, the external
/// interface's egress program translates), translates nothing and counts
/// nothing. (The external ifindex is set — to `lo`, the only device — so
/// only the missing route stops the fast path.)
#[test]
fn without_a_route_outbound_is_untouched() {
    let ns = empty_ns("nrout");
    let mut fp = with_flows(&[Prog::Inside], true);
    fp.set_ext_ifindex(1);
    let state = fp.napt_state();
    outbound_cases_untouched(Prog::Inside, "no route", |f| {
        ns.in_ns(|| fp.run(Prog::Inside, f, None))
    });
    assert_nothing_outbound(&fp, &state, "no route");
}

// ================================================================ fast path off

/// Fast path off, routes, neighbours, external ifindex and XDP targets
/// present: inbound packets are translated and passed to the stack as
/// before; the inside program passes non-hairpin traffic untouched.
#[test]
fn fast_path_off_changes_nothing() {
    let fib = FibNs::new("off");
    let mut fp = with_flows(&[Prog::InXdp, Prog::InTc, Prog::Inside], false);
    fib.ready(&mut fp);
    for prog in Prog::INGRESS {
        inbound_cases_pass_translated(&fp, prog, "fast path off", |f| fib.inbound(&fp, prog, f));
    }
    let state = fp.napt_state();
    outbound_cases_untouched(Prog::Inside, "fast path off", |f| fib.outbound(&fp, f));
    assert_nothing_outbound(&fp, &state, "fast path off");
}

// ================================================================ inbound

/// Established flows, routes and resolved neighbours (and, for XDP, the
/// egress device in0 in `XDP_TARGETS`): translated, TTL 64 → 63 (checksum
/// fixed), MACs of the inside link, redirected.
#[test]
fn inbound_established_is_redirected() {
    let fib = FibNs::new("in");
    let mut fp = with_flows(&Prog::INGRESS, true);
    fib.ready(&mut fp);
    let mut n = 0;
    for prog in Prog::INGRESS {
        inbound_cases_redirected(&fp, prog, &mut n, "established", |f| {
            fib.inbound(&fp, prog, f)
        });
    }
    assert_eq!(fp.counter(Counter::IngressTranslated), n);
}

/// XDP redirects only to devices in `XDP_TARGETS`: with the egress device
/// (in0) missing — the map empty, then holding every other device — XDP
/// passes the translated packet to the stack (`XDP_PASS`, TTL and MACs
/// untouched, not counted as fast). With in0 added it redirects; removed
/// again, it passes again. TC ignores the map (it can redirect anywhere).
#[test]
fn inbound_xdp_redirects_only_to_xdp_targets() {
    let fib = FibNs::new("intgt");
    let mut fp = with_flows(&Prog::INGRESS, true);
    fp.set_ext_ifindex(fib.ext0);
    let passes = |fp: &Fp, when: &str| {
        inbound_cases_pass_translated(fp, Prog::InXdp, when, |f| fib.inbound(fp, Prog::InXdp, f));
    };
    passes(&fp, "XDP_TARGETS empty");
    assert_eq!(fp.fast(), (0, 0), "XDP_TARGETS empty");

    // TC mode does not depend on the map.
    let mut n = 0;
    inbound_cases_redirected(&fp, Prog::InTc, &mut n, "TC, XDP_TARGETS empty", |f| {
        fib.inbound(&fp, Prog::InTc, f)
    });
    assert_eq!(fp.fast(), (n, 0), "TC with XDP_TARGETS empty");

    fib.add_xdp_targets(&mut fp, &[fib.ext0, fib.in1, fib.in2]);
    passes(&fp, "XDP_TARGETS without in0");
    assert_eq!(fp.fast(), (n, 0), "XDP_TARGETS without in0");

    fib.add_xdp_targets(&mut fp, &[fib.in0]);
    inbound_cases_redirected(&fp, Prog::InXdp, &mut n, "in0 in XDP_TARGETS", |f| {
        fib.inbound(&fp, Prog::InXdp, f)
    });

    fib.ns.in_ns(|| fp.remove_xdp_target(fib.in0));
    passes(&fp, "in0 removed from XDP_TARGETS");
    assert_eq!(fp.fast(), (n, 0), "in0 removed from XDP_TARGETS");
}

/// The inside host's neighbour entry is missing: XDP cannot resolve it and
/// passes the translated packet to the stack (TTL and MACs untouched; its
/// egress device in0 is an XDP target); TC
/// hands it to `bpf_redirect_neigh` (TTL decremented, MACs left for the
/// kernel to fill in).
#[test]
fn inbound_unresolved_neighbour() {
    let fib = FibNs::new("inng");
    let mut fp = Fp::new(&Prog::INGRESS, true);
    fib.ready(&mut fp);
    let input = udp((SRV, 53), (PUB_N, 40000), b"to a host not resolved yet");
    let translated = udp((SRV, 53), (N, 40000), b"to a host not resolved yet");

    let out = fib.inbound(&fp, Prog::InXdp, &input.frame());
    expect(
        "XDP, no neighbour",
        Prog::InXdp,
        &out,
        XDP_PASS,
        &translated.frame(),
    );
    assert_eq!(fp.fast(), (0, 0));

    let out = fib.inbound(&fp, Prog::InTc, &input.frame());
    let want = translated.with_ttl(63).frame();
    expect("TC, no neighbour", Prog::InTc, &out, TC_ACT_REDIRECT, &want);
    assert_eq!(fp.fast(), (1, 0));
}

/// TTL 1 (and 0): the gateway must answer time exceeded, so the packet
/// goes to the stack translated with its TTL unchanged. TTL 2 is forwarded
/// with TTL 1.
#[test]
fn inbound_ttl() {
    let fib = FibNs::new("inttl");
    let mut fp = Fp::new(&Prog::INGRESS, true);
    fib.ready(&mut fp);
    let input = udp((SRV, 53), (PUB_S, 40000), b"ttl");
    let translated = udp((SRV, 53), (S, 40000), b"ttl");
    for prog in Prog::INGRESS {
        let start = fp.fast().0;
        for ttl in [0, 1] {
            let out = fib.inbound(&fp, prog, &input.clone().with_ttl(ttl).frame());
            let want = translated.clone().with_ttl(ttl).frame();
            expect(&format!("TTL {ttl}"), prog, &out, prog.pass(), &want);
        }
        assert_eq!(fp.fast().0, start, "TTL ≤ 1 took the fast path");
        let before = fp.fast().0;
        let out = fib.inbound(&fp, prog, &input.clone().with_ttl(2).frame());
        let want = with_macs(translated.clone().with_ttl(1).frame(), MAC_S, MAC_IN0);
        expect("TTL 2", prog, &out, prog.redirect(), &want);
        assert_eq!(fp.fast().0, before + 1);
    }
}

/// An inbound packet for a statically mapped host behind a 1280-byte MTU:
/// 1428 bytes must go to the stack (which fragments it or answers
/// "fragmentation needed"), 1228 bytes are forwarded.
struct MtuCase {
    /// The namespace's tag.
    tag: &'static str,
    /// Which MTU is 1280 (named in the assertion messages).
    mtu: &'static str,
    public: Ipv4Addr,
    host: Ipv4Addr,
    host_mac: [u8; 6],
    /// The gateway's MAC on the host's link.
    gw_mac: [u8; 6],
}

/// The device's MTU: M on in1, whose MTU is 1280.
const DEVICE_MTU: MtuCase = MtuCase {
    tag: "inmtu",
    mtu: "MTU 1280",
    public: PUB_M,
    host: M,
    host_mac: MAC_M,
    gw_mac: MAC_IN1,
};

/// The MTU of the *route* to the inside host: Q behind 10.0.2.0/24 dev in2
/// mtu lock 1280 (the device's MTU is 1500). The kernel's forwarding honours
/// the route MTU, so the fast path must leave such a packet to the stack
/// too.
const ROUTE_MTU: MtuCase = MtuCase {
    tag: "inrmt",
    mtu: "route MTU 1280",
    public: PUB_Q,
    host: Q,
    host_mac: MAC_Q,
    gw_mac: MAC_IN2,
};

#[track_caller]
fn inbound_mtu(case: &MtuCase) {
    let fib = FibNs::new(case.tag);
    let mut fp = Fp::new(&Prog::INGRESS, true);
    fib.ready(&mut fp);
    let mtu = case.mtu;
    for prog in Prog::INGRESS {
        let before = fp.fast().0;
        let big = vec![0x5a; 1400];
        let input = udp((SRV, 53), (case.public, 40000), &big);
        let out = fib.inbound(&fp, prog, &input.frame());
        let translated = udp((SRV, 53), (case.host, 40000), &big);
        let what = format!("1428-byte packet, {mtu}");
        expect(&what, prog, &out, prog.pass(), &translated.frame());
        assert_eq!(
            fp.fast().0,
            before,
            "{what} ({}): too big, but fast",
            prog.name()
        );

        let fits = vec![0x5a; 1200];
        let input = udp((SRV, 53), (case.public, 40000), &fits);
        let out = fib.inbound(&fp, prog, &input.frame());
        let translated = udp((SRV, 53), (case.host, 40000), &fits);
        let want = with_macs(translated.with_ttl(63).frame(), case.host_mac, case.gw_mac);
        let what = format!("1228-byte packet, {mtu}");
        expect(&what, prog, &out, prog.redirect(), &want);
        assert_eq!(fp.fast().0, before + 1, "{what} ({})", prog.name());
    }
}

#[test]
fn inbound_larger_than_the_device_mtu_goes_to_the_stack() {
    inbound_mtu(&DEVICE_MTU);
}

#[test]
fn inbound_larger_than_the_route_mtu_goes_to_the_stack() {
    inbound_mtu(&ROUTE_MTU);
}

// ================================================================ outbound

/// Established flows (static, NAPT with a session to this remote): the
/// inside program translates, decrements the TTL, sets the MACs of the
/// external link and redirects.
#[test]
fn outbound_established_is_redirected() {
    let fib = FibNs::new("out");
    let mut fp = with_flows(&[Prog::Inside], true);
    fib.ready(&mut fp);
    let mut n = 0;
    outbound_cases_redirected(&fp, Prog::Inside, &mut n, "from in0", |f| {
        fib.outbound(&fp, f)
    });
    // From the other inside interfaces.
    for (what, ifindex, host, public) in [
        ("static UDP from in1", fib.in1, M, PUB_M),
        ("static UDP from in2", fib.in2, Q, PUB_Q),
    ] {
        let input = udp((host, 40000), (SRV, 53), what.as_bytes());
        let out = fib.outbound_on(&fp, ifindex, &input.frame());
        let want = with_macs(
            udp((public, 40000), (SRV, 53), what.as_bytes())
                .with_ttl(63)
                .frame(),
            MAC_RTR,
            MAC_EXT,
        );
        expect(what, Prog::Inside, &out, TC_ACT_REDIRECT, &want);
        n += 1;
        assert_eq!(fp.fast(), (0, n), "{what}");
    }
}

/// `xnat_inside_xdp`, ext0 an XDP target: established flows are
/// translated, TTL decremented, MACs of the external link set and
/// redirected, byte for byte as the TC program does. With ext0 not an XDP
/// target, the same packets pass untouched (to the TC program), nothing
/// counted.
#[test]
fn outbound_xdp_established_is_redirected() {
    let fib = FibNs::new("oxdp");
    let mut fp = with_flows(&[Prog::InsideXdp], true);
    fib.ready(&mut fp);
    let state = fp.napt_state();
    let when = "ext0 not an XDP target";
    outbound_cases_untouched(Prog::InsideXdp, when, |f| fib.outbound_xdp(&fp, f));
    assert_nothing_outbound(&fp, &state, when);

    fib.add_xdp_targets(&mut fp, &[fib.ext0]);
    let mut n = 0;
    outbound_cases_redirected(&fp, Prog::InsideXdp, &mut n, "ext0 an XDP target", |f| {
        fib.outbound_xdp(&fp, f)
    });
}

/// What `xnat_inside_xdp` leaves to the TC program and the stack,
/// untouched and uncounted: what the TC program leaves to the stack (new
/// flows, ICMP, fragments, TTL ≤ 1, non-IPv4, packets for the gateway),
/// plus hairpinned packets (to a public address of ours: the TC program
/// translates those) and a next hop whose neighbour is unresolved (only
/// TC can have the kernel resolve it).
#[test]
fn outbound_xdp_leaves_the_rest_to_tc() {
    let fib = FibNs::new("oxne");
    let mut fp = with_flows(&[Prog::InsideXdp], true);
    fib.ready(&mut fp);
    fib.add_xdp_targets(&mut fp, &[fib.ext0]);
    let state = fp.napt_state();
    let whole = udp((S, 40000), (SRV, 53), &[0x11; 64]);
    let mut first = whole.fragment(0, 40, true);
    first.ip.flags |= IP_MF;
    let later = whole.fragment(40, 32, false);
    let mut cases = not_established_frames();
    cases.extend([
        ("static first fragment", first.frame()),
        ("static later fragment", later.frame()),
        (
            "static UDP to the gateway",
            udp((S, 40000), (GW_IN0, 53), b"gateway").frame(),
        ),
        (
            "static UDP, hairpinned to a static public address",
            udp((S, 40000), (PUB_M, 53), b"hairpin").frame(),
        ),
        (
            "static UDP, hairpinned to the pool",
            udp((S, 40000), (POOL, 41000), b"hairpin").frame(),
        ),
        (
            "static UDP, next hop unresolved",
            udp((S, 40000), (UNRESOLVED, 53), b"unresolved").frame(),
        ),
    ]);
    for (what, frame) in cases {
        let out = fib.outbound_xdp(&fp, &frame);
        expect(what, Prog::InsideXdp, &out, XDP_PASS, &frame);
    }
    assert_nothing_outbound(&fp, &state, "the XDP inside program");
}

/// Outbound frames the fast path leaves to the normal path, untouched:
/// new NAPT flows, NAPT ICMP and fragments, TTL ≤ 1, non-IPv4.
fn not_established_frames() -> Vec<(&'static str, Vec<u8>)> {
    let whole = udp((A, 40000), (SRV, 53), &[0x11; 64]);
    let mut first = whole.fragment(0, 40, true);
    first.ip.flags |= IP_MF;
    let later = whole.fragment(40, 32, false);
    vec![
        (
            "NAPT UDP, no mapping",
            udp((A, 45000), (SRV, 53), b"new").frame(),
        ),
        (
            "NAPT TCP SYN, no mapping",
            Packet::tcp(A, SRV, Tcp::syn(45001, 443)).frame(),
        ),
        (
            "NAPT UDP, mapping but no session to this remote",
            udp((A, 40000), (SRV, 54), b"other port").frame(),
        ),
        (
            "NAPT UDP, mapping but no session to this remote address",
            udp((A, 40000), (Ipv4Addr::new(198, 18, 0, 11), 53), b"other").frame(),
        ),
        (
            "NAPT UDP, mapping with an empty first slot, no session to this remote",
            udp((A, 40002), (SRV, 54), b"other port").frame(),
        ),
        (
            "NAPT ICMP echo request",
            Packet::icmp(A, SRV, Icmp::echo_request(40000, 1, b"ping")).frame(),
        ),
        ("NAPT first fragment", first.frame()),
        ("NAPT later fragment", later.frame()),
        (
            "static UDP, TTL 1",
            udp((S, 40000), (SRV, 53), b"ttl 1").with_ttl(1).frame(),
        ),
        (
            "NAPT UDP, TTL 1",
            udp((A, 40000), (SRV, 53), b"ttl 1").with_ttl(1).frame(),
        ),
        (
            "static UDP, TTL 0",
            udp((S, 40000), (SRV, 53), b"ttl 0").with_ttl(0).frame(),
        ),
        ("ARP", frame::arp_request(S, GW_IN0)),
        ("IPv6", frame::ipv6_udp(b"v6")),
    ]
}

/// What the fast path leaves to the normal path: new NAPT flows (no
/// mapping; a mapping without a session to this remote), NAPT ICMP, NAPT
/// fragments, TTL ≤ 1, non-IPv4. Untouched, nothing created, nothing
/// counted.
#[test]
fn outbound_non_established_is_untouched() {
    let fib = FibNs::new("outne");
    let mut fp = with_flows(&[Prog::Inside], true);
    fib.ready(&mut fp);
    let state = fp.napt_state();
    let cases = not_established_frames();
    for (what, frame) in cases {
        let out = fib.outbound(&fp, &frame);
        expect(what, Prog::Inside, &out, TC_ACT_OK, &frame);
    }
    assert_nothing_outbound(&fp, &state, "not established");
}

/// Packets for the gateway itself (its inside and outside addresses),
/// even from a statically mapped host: the FIB says "local", the stack
/// gets them untranslated.
#[test]
fn outbound_to_the_gateway_itself_is_untouched() {
    let fib = FibNs::new("outgw");
    let mut fp = with_flows(&[Prog::Inside], true);
    fib.ready(&mut fp);
    for dst in [GW_IN0, GW_EXT] {
        for frame in [
            udp((S, 40000), (dst, 53), b"to the gateway").frame(),
            tcp((A, 40001), (dst, 22), b"to the gateway").frame(),
            Packet::icmp(S, dst, Icmp::echo_request(7, 1, b"ping")).frame(),
        ] {
            let out = fib.outbound(&fp, &frame);
            expect(&format!("to {dst}"), Prog::Inside, &out, TC_ACT_OK, &frame);
        }
    }
    assert_eq!(fp.fast(), (0, 0));
    assert_eq!(fp.counter(Counter::EgressTranslated), 0);
}

/// The next hop outside is not resolved: the inside program is TC, so it
/// translates and hands the packet to `bpf_redirect_neigh` (TTL
/// decremented, MACs left to the kernel).
#[test]
fn outbound_unresolved_neighbour_uses_redirect_neigh() {
    let fib = FibNs::new("outng");
    let mut fp = Fp::new(&[Prog::Inside], true);
    fib.ready(&mut fp);
    let input = udp((S, 40000), (UNRESOLVED, 53), b"next hop unresolved");
    let out = fib.outbound(&fp, &input.frame());
    let want = udp((PUB_S, 40000), (UNRESOLVED, 53), b"next hop unresolved")
        .with_ttl(63)
        .frame();
    expect(
        "unresolved next hop",
        Prog::Inside,
        &out,
        TC_ACT_REDIRECT,
        &want,
    );
    assert_eq!(fp.fast(), (0, 1));
}

/// Too big for the route towards the server (198.51.100.0/24 via the
/// router, mtu 1280; ext0's MTU is 1500): the kernel's forwarding honours
/// the route MTU ("fragmentation needed" for DF packets), so the fast
/// path must leave the packet to the stack, untouched.
#[test]
fn outbound_larger_than_the_route_mtu_goes_to_the_stack() {
    let fib = FibNs::new("outmtu");
    let mut fp = Fp::new(&[Prog::Inside], true);
    fib.ready(&mut fp);
    let frame = udp((S, 40000), (SRV_SMALL, 53), &[0x5a; 1400]).frame();
    let out = fib.outbound(&fp, &frame);
    expect(
        "1428-byte DF packet, route MTU 1280",
        Prog::Inside,
        &out,
        TC_ACT_OK,
        &frame,
    );
    assert_eq!(fp.fast(), (0, 0));
    // One that fits is forwarded.
    let input = udp((S, 40000), (SRV_SMALL, 53), &[0x5a; 1200]);
    let out = fib.outbound(&fp, &input.frame());
    let want = with_macs(
        udp((PUB_S, 40000), (SRV_SMALL, 53), &[0x5a; 1200])
            .with_ttl(63)
            .frame(),
        MAC_RTR,
        MAC_EXT,
    );
    expect(
        "1228-byte packet",
        Prog::Inside,
        &out,
        TC_ACT_REDIRECT,
        &want,
    );
    assert_eq!(fp.fast(), (0, 1));
}

/// Statically mapped hosts talking to hosts on other inside interfaces
/// (S on in0 ↔ M on in1 and Q on in2): the normal path forwards such
/// traffic untranslated (only the external interface translates), so the
/// fast path must leave it to the stack untouched — it only takes packets
/// the FIB routes to the external interface.
#[test]
fn outbound_between_inside_interfaces_is_not_translated() {
    let fib = FibNs::new("outii");
    let mut fp = with_flows(&[Prog::Inside], true);
    fib.ready(&mut fp);
    let state = fp.napt_state();
    for (what, ifindex, frame) in [
        (
            "S (in0) to M (in1)",
            fib.in0,
            udp((S, 40000), (M, 53), b"inside to inside").frame(),
        ),
        (
            "S (in0) to Q (in2)",
            fib.in0,
            tcp((S, 40001), (Q, 443), b"inside to inside").frame(),
        ),
        (
            "M (in1) to S (in0)",
            fib.in1,
            udp((M, 40000), (S, 53), b"inside to inside").frame(),
        ),
        (
            "Q (in2) to S (in0)",
            fib.in2,
            udp((Q, 40000), (S, 53), b"inside to inside").frame(),
        ),
        (
            "A (NAPT, in0) to M (in1)",
            fib.in0,
            udp((A, 40000), (M, 53), b"inside to inside").frame(),
        ),
    ] {
        let out = fib.outbound_on(&fp, ifindex, &frame);
        expect(what, Prog::Inside, &out, TC_ACT_OK, &frame);
    }
    assert_nothing_outbound(&fp, &state, "inside-to-inside traffic");
}

/// The outbound fast path needs the external interface's ifindex: with
/// `FAST_PATH[FAST_PATH_EXT_IFINDEX]` 0 (unknown) or naming another device
/// (in1), established flows routed to ext0 are left untouched to the stack;
/// set to ext0 they are redirected.
#[test]
fn outbound_needs_the_external_ifindex() {
    let fib = FibNs::new("outext");
    let mut fp = with_flows(&[Prog::Inside], true);
    let state = fp.napt_state();
    for (ext, name) in [(0, "0"), (fib.in1, "in1")] {
        fp.set_ext_ifindex(ext);
        let when = format!("external ifindex {name}");
        outbound_cases_untouched(Prog::Inside, &when, |f| fib.outbound(&fp, f));
        assert_nothing_outbound(&fp, &state, &when);
    }
    fp.set_ext_ifindex(fib.ext0);
    let mut n = 0;
    outbound_cases_redirected(&fp, Prog::Inside, &mut n, "external ifindex ext0", |f| {
        fib.outbound(&fp, f)
    });
}
