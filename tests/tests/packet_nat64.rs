//! Packet tests of NAT64 (RFC 6146 built on NAT44, RFC 7915 translation,
//! RFC 6052 addresses): frames built from scratch run through the real
//! compiled programs with `BPF_PROG_TEST_RUN`, the NAT64 programs loaded
//! into their program arrays as `xnat attach` does
//! (`xnat_tests::bpf::load_object_nat64`), so the tail calls happen inside
//! the test run.
//!
//! - IPv6 -> IPv4: `xnat_inside_tc` (or `xnat_nat64_out_tc` directly)
//!   translates, gives the host a stand-in, tail-calls the NAT44 step, which
//!   forwards with `bpf_fib_lookup` and a redirect. The FIB is the one of
//!   the namespace the test run happens in, so every outbound run happens on
//!   a thread inside a scratch namespace ([`Gw`]): `ext0` 192.0.2.1/24 with
//!   a default route via the router 192.0.2.2 (permanent neighbour), `in0`
//!   the inside link the frames come in on; forwarding on. A translated
//!   packet comes out redirected (`TC_ACT_REDIRECT`) with the router's MAC,
//!   its TTL decremented once.
//! - IPv4 -> IPv6: `xnat_ingress_tc` and `xnat_ingress_xdp` run NAT44
//!   inbound, then tail-call `xnat_nat64_in_tc` / `_xdp`; the IPv6 packet
//!   goes to the stack (`TC_ACT_OK` / `XDP_PASS`). Its mapping is made the
//!   way the data plane makes it: by an outbound IPv6 packet first.
//!
//! Every expected output is built from scratch (`xnat_tests::frame`, full
//! checksums over the right pseudo-header) and compared byte for byte;
//! every checksum of every output (IPv4, TCP, UDP, ICMP, ICMPv6, and those
//! of a quoted datagram) is also recomputed from scratch
//! (`check_ip_checksums`). Counters are checked exactly: the listed ones
//! move by the given amount, every other one stays put. The RFC 6052
//! embedding the tests expect is computed bit by bit here ([`embed`]),
//! checked against the RFC's own examples, not taken from nat_common.
//!
//! Needs root: `cargo test -p xnat-tests --test packet_nat64`.

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::Ebpf;
use nat_common::nat64::{
    Nat64Config, Nat64Host, STAND_IN_PROBES, WELL_KNOWN_PREFIX, is_stand_in, stand_in_probe,
};
use nat_common::stats::COUNTER_COUNT;
use nat_common::{
    Counter, FAST_PATH_EXT_IFINDEX, FAST_PATH_ON, MAPPING_FORWARD, NatConfig, PROG_INGRESS_TC,
    PROG_INGRESS_XDP, PROG_INSIDE_TC, PROG_INSIDE_XDP, PROG_NAT64_OUT_TC,
};
use nat_userspace::settings::napt::Filtering;
use nat_userspace::tables::{Loaded, LoadedRef};
use xnat_tests::bpf::{
    self, Outcome, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, XDP_DROP, XDP_PASS, require_root,
};
use xnat_tests::frame::{
    ETH_HLEN, IP_DF, Icmp, L4, L6, Packet, Packet6, Tcp, Udp, assert_frame_eq, check_ip_checksums,
    hex_dump, icmp, icmpv6, proto, tcp_flags,
};
use xnat_tests::napt_maps::{Endpoint, be, clock_window, dataplane_now_ns, default_config, ip};
use xnat_tests::netns::Netns;

const XDP_REDIRECT: u32 = 4;

/// IPv6 inside hosts.
const H6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
const H6B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11);
/// A server on the IPv4 internet.
const R: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// A router on the IPv4 side that sends ICMP errors.
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The NAPT pool.
const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

const MAC_EXT: [u8; 6] = [0x02, 0, 0, 0, 0xe0, 0x01];
const MAC_RTR: [u8; 6] = [0x02, 0, 0, 0, 0xe0, 0x02];
const MAC_IN0: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
/// The IPv6 hosts' MAC addresses (neighbour entries of [`Gw::with_ipv6`]).
const MAC_H6: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x10];
const MAC_H6C: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x12];
/// An IPv6 host behind a route with MTU 1280.
const H6C: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x12);

/// The examples of RFC 6052 section 2.4: 192.0.2.33 under each prefix
/// length, as the RFC writes them.
const RFC6052_EXAMPLES: [(&str, u8, &str); 6] = [
    ("2001:db8::", 32, "2001:db8:c000:221::"),
    ("2001:db8:100::", 40, "2001:db8:1c0:2:21::"),
    ("2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::", 96, "2001:db8:122:344::c000:221"),
];

// ================================================================ RFC 6052

/// The IPv4-embedded IPv6 address of `v4` under `prefix`/`len` (RFC 6052
/// section 2.2), bit by bit: the 32 bits of the IPv4 address follow the
/// prefix, skipping bits 64 to 71 (the "u" octet); the suffix is zero.
fn embed(prefix: Ipv6Addr, len: u32, v4: Ipv4Addr) -> Ipv6Addr {
    let mut bits = u128::from(prefix);
    let v = u32::from(v4);
    let mut pos = len;
    for i in 0..32 {
        if (64..72).contains(&pos) {
            pos = 72;
        }
        let bit = (v >> (31 - i)) & 1;
        bits |= u128::from(bit) << (127 - pos);
        pos += 1;
    }
    Ipv6Addr::from(bits)
}

/// The well-known prefix 64:ff9b::/96 (RFC 6052 section 2.1).
fn wkp() -> Ipv6Addr {
    Ipv6Addr::from(WELL_KNOWN_PREFIX)
}

/// `v4` under the well-known prefix.
fn w(v4: Ipv4Addr) -> Ipv6Addr {
    embed(wkp(), 96, v4)
}

fn wkp_config() -> Nat64Config {
    Nat64Config::new(WELL_KNOWN_PREFIX, 96).expect("the well-known prefix")
}

#[test]
fn rfc6052_oracle_matches_the_rfc_examples() {
    for (prefix, len, want) in RFC6052_EXAMPLES {
        let got = embed(
            prefix.parse().unwrap(),
            len.into(),
            Ipv4Addr::new(192, 0, 2, 33),
        );
        assert_eq!(got, want.parse::<Ipv6Addr>().unwrap(), "/{len}");
    }
    assert_eq!(
        w(Ipv4Addr::new(192, 0, 2, 33)),
        "64:ff9b::192.0.2.33".parse::<Ipv6Addr>().unwrap()
    );
}

// ================================================================ harness

/// Which program a frame runs through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prog {
    /// `xnat_inside_tc` (inside interfaces' TC ingress), which tail-calls
    /// NAT64 for IPv6 frames.
    Inside,
    /// `xnat_nat64_out_tc` run directly.
    Nat64Out,
    /// `xnat_ingress_tc` (external interface).
    InTc,
    /// `xnat_ingress_xdp` (external interface).
    InXdp,
    /// `xnat_inside_xdp` (inside interfaces, `--inside-hook xdp`), which
    /// tail-calls NAT64's XDP program for IPv6 frames.
    InsideXdp,
}

impl Prog {
    /// The outbound entry points.
    const OUTBOUND: [Prog; 2] = [Prog::Inside, Prog::Nat64Out];
    /// Both ingress programs, which must behave the same.
    const INGRESS: [Prog; 2] = [Prog::InTc, Prog::InXdp];

    fn name(self) -> &'static str {
        match self {
            Prog::Inside => PROG_INSIDE_TC,
            Prog::Nat64Out => PROG_NAT64_OUT_TC,
            Prog::InTc => PROG_INGRESS_TC,
            Prog::InXdp => PROG_INGRESS_XDP,
            Prog::InsideXdp => PROG_INSIDE_XDP,
        }
    }

    fn is_xdp(self) -> bool {
        matches!(self, Prog::InXdp | Prog::InsideXdp)
    }

    /// "To the stack".
    fn pass(self) -> u32 {
        if self.is_xdp() { XDP_PASS } else { TC_ACT_OK }
    }

    fn drop(self) -> u32 {
        if self.is_xdp() { XDP_DROP } else { TC_ACT_SHOT }
    }

    fn verdict_name(self, v: u32) -> String {
        let n = match (self.is_xdp(), v) {
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
}

/// One loaded instance of xnat's object (its own maps): NAPT on with the
/// pool [`POOL`] and the control plane's defaults (address-dependent
/// filtering unless changed), NAT64 configured, the NAT64 programs in their
/// program arrays.
struct N64 {
    ebpf: Ebpf,
}

impl N64 {
    /// NAT64 under the well-known prefix.
    fn new() -> N64 {
        Self::with(wkp_config(), |_| {})
    }

    fn with(nat64: Nat64Config, tweak: impl FnOnce(&mut NatConfig)) -> N64 {
        require_root();
        let ebpf = bpf::load_object_nat64(
            &mut aya::EbpfLoader::new(),
            &[
                PROG_INSIDE_TC,
                PROG_INGRESS_TC,
                PROG_INGRESS_XDP,
                PROG_INSIDE_XDP,
            ],
        )
        .unwrap_or_else(|e| panic!("loading xnat's BPF object: {e:#}"));
        Self::configured(ebpf, nat64, tweak)
    }

    /// The same configuration, but the NAT64 programs not loaded (their
    /// program arrays empty), as on an attachment without NAT64.
    fn without_programs(nat64: Nat64Config) -> N64 {
        require_root();
        let ebpf = bpf::load_object(
            &mut aya::EbpfLoader::new(),
            &[PROG_INSIDE_TC, PROG_INGRESS_TC, PROG_INGRESS_XDP],
        )
        .unwrap_or_else(|e| panic!("loading xnat's BPF object: {e:#}"));
        Self::configured(ebpf, nat64, |_| {})
    }

    fn configured(ebpf: Ebpf, nat64: Nat64Config, tweak: impl FnOnce(&mut NatConfig)) -> N64 {
        let mut n = N64 { ebpf };
        let mut cfg = default_config();
        cfg.pool_len = 1;
        tweak(&mut cfg);
        Loaded::new(&mut n.ebpf)
            .config()
            .unwrap()
            .set(0, cfg, 0)
            .expect("CONFIG");
        Loaded::new(&mut n.ebpf)
            .pool()
            .unwrap()
            .set(0, be(POOL), 0)
            .expect("POOL");
        n.set_nat64(nat64);
        n
    }

    fn set_nat64(&mut self, cfg: Nat64Config) {
        Loaded::new(&mut self.ebpf)
            .nat64()
            .unwrap()
            .set(0, cfg, 0)
            .expect("NAT64");
    }

    /// `FAST_PATH[FAST_PATH_EXT_IFINDEX]`: the external interface, whose
    /// MTU NAT64 checks (the agent writes it at attach).
    fn set_ext_ifindex(&mut self, ifindex: u32) {
        Loaded::new(&mut self.ebpf)
            .fast_path()
            .unwrap()
            .set(FAST_PATH_EXT_IFINDEX, ifindex, 0)
            .expect("FAST_PATH");
    }

    /// `--fast-path` on or off (`FAST_PATH[FAST_PATH_ON]`).
    fn set_fast_path(&mut self, on: bool) {
        Loaded::new(&mut self.ebpf)
            .fast_path()
            .unwrap()
            .set(FAST_PATH_ON, u32::from(on), 0)
            .expect("FAST_PATH");
    }

    /// Adds `ifindex` to `XDP_TARGETS` (call it inside the namespace the
    /// device lives in: the kernel resolves it there).
    fn add_xdp_target(&mut self, ifindex: u32) {
        Loaded::new(&mut self.ebpf)
            .xdp_targets()
            .unwrap()
            .insert(ifindex, ifindex, None, 0)
            .expect("XDP_TARGETS");
    }

    /// Runs `frame` through `prog` once on the calling thread, as if it came
    /// in on `ifindex` (a device of the thread's namespace).
    fn run(&self, prog: Prog, frame: &[u8], ifindex: Option<u32>) -> Outcome {
        bpf::try_run_program(&self.ebpf, prog.name(), frame, ifindex)
            .unwrap_or_else(|e| panic!("{prog:?}: {e:#}"))
    }

    fn counters(&self) -> [u64; COUNTER_COUNT as usize] {
        bpf::counters(&self.ebpf)
    }

    /// The stand-in of the IPv6 host `h` (NAT64_HOSTS), if it has one.
    fn stand_in(&self, h: Ipv6Addr) -> Option<Ipv4Addr> {
        bpf::get(&self.ebpf, LoadedRef::nat64_hosts, &h.octets()).map(ip)
    }

    /// What NAT64_IDS holds for the stand-in `s`.
    fn host_of(&self, s: Ipv4Addr) -> Option<Nat64Host> {
        bpf::get(&self.ebpf, LoadedRef::nat64_ids, &be(s))
    }

    fn forget_host(&mut self, s: Ipv4Addr) {
        let mut t = Loaded::new(&mut self.ebpf).nat64_ids().unwrap();
        t.remove(&be(s)).expect("deleting from NAT64_IDS");
    }

    /// The public endpoint of the inside endpoint `inside` (NAPT_OUT).
    fn public_of(&self, inside: Endpoint) -> Option<Endpoint> {
        bpf::get(&self.ebpf, LoadedRef::napt_out, &inside.key()).map(|m| inside.of_mapping(&m))
    }

    /// The inside endpoint behind the public endpoint `public` (NAPT_IN).
    fn inside_of(&self, public: Endpoint) -> Option<Endpoint> {
        bpf::get(&self.ebpf, LoadedRef::napt_in, &public.key()).map(|i| public.of_inside(&i))
    }

    /// Every entry of NAT64_HOSTS, NAT64_IDS, NAPT_OUT and NAPT_IN, as
    /// bytes, sorted: what a refused or passed packet must not change.
    fn tables(&self) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        fn bytes<T: aya::Pod>(v: &T) -> Vec<u8> {
            // SAFETY: Pod values read back from the kernel: plain bytes.
            unsafe {
                std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()).to_vec()
            }
        }
        fn dump<K: aya::Pod, V: aya::Pod>(v: Vec<(K, V)>) -> Vec<(Vec<u8>, Vec<u8>)> {
            let mut v: Vec<_> = v.iter().map(|(k, v)| (bytes(k), bytes(v))).collect();
            v.sort();
            v
        }
        vec![
            dump(bpf::all(&self.ebpf, LoadedRef::nat64_hosts)),
            dump(bpf::all(&self.ebpf, LoadedRef::nat64_ids)),
            dump(bpf::all(&self.ebpf, LoadedRef::napt_out)),
            dump(bpf::all(&self.ebpf, LoadedRef::napt_in)),
        ]
    }
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A scratch namespace standing for the gateway (see the module docs).
struct Gw {
    ns: Netns,
    ext0: u32,
    in0: u32,
}

impl Gw {
    /// The gateway's namespace; `ext0` has the MTU `ext_mtu`.
    fn new(tag: &str, ext_mtu: u32) -> Gw {
        require_root();
        let ns = Netns::create(format!("xn64{}-{tag}", std::process::id()));
        for (dev, m) in [("ext0", MAC_EXT), ("in0", MAC_IN0)] {
            let peer = format!("{dev}p");
            ns.ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer]);
            ns.ip(&["link", "set", dev, "address", &mac_str(m)]);
            ns.ip(&["link", "set", &peer, "up"]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        ns.ip(&["link", "set", "ext0", "mtu", &ext_mtu.to_string()]);
        ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "ext0"]);
        ns.ip(&["addr", "add", "10.0.0.1/24", "dev", "in0"]);
        ns.ip(&["route", "add", "default", "via", "192.0.2.2"]);
        ns.ip(&[
            "neigh",
            "replace",
            "192.0.2.2",
            "lladdr",
            &mac_str(MAC_RTR),
            "dev",
            "ext0",
            "nud",
            "permanent",
        ]);
        ns.sysctl("net.ipv4.ip_forward", "1");
        let idx = |dev: &str| -> u32 {
            let out = ns.ip(&["-o", "link", "show", "dev", dev]);
            out.split(':')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("no ifindex in {out:?}"))
        };
        let (ext0, in0) = (idx("ext0"), idx("in0"));
        Gw { ns, ext0, in0 }
    }

    /// The inside link as an IPv6 router has it, for the fast path:
    /// 2001:db8:1::1/64 on in0, IPv6 forwarding on, permanent neighbour
    /// entries for H6 and H6C (behind a /128 route with MTU 1280), none for
    /// H6B.
    fn with_ipv6(self) -> Gw {
        self.ns.sysctl("net.ipv6.conf.all.forwarding", "1");
        self.ns.ip(&[
            "-6",
            "addr",
            "add",
            "2001:db8:1::1/64",
            "dev",
            "in0",
            "nodad",
        ]);
        let c = H6C.to_string();
        self.ns.ip(&[
            "-6", "route", "add", &c, "dev", "in0", "mtu", "lock", "1280",
        ]);
        for (h, m) in [(H6.to_string(), MAC_H6), (c, MAC_H6C)] {
            self.ns.ip(&[
                "-6",
                "neigh",
                "replace",
                &h,
                "lladdr",
                &mac_str(m),
                "dev",
                "in0",
                "nud",
                "permanent",
            ]);
        }
        self
    }

    /// The gateway with a 1500-byte external link, `n` told which one it is.
    fn for_nat(tag: &str, n: &mut N64) -> Gw {
        let gw = Gw::new(tag, 1500);
        n.set_ext_ifindex(gw.ext0);
        gw
    }

    /// Runs `frame` through `prog`: an outbound program as if it came in on
    /// in0, an ingress program as if it came in on ext0.
    fn run(&self, n: &N64, prog: Prog, frame: &[u8]) -> Outcome {
        let dev = match prog {
            Prog::Inside | Prog::Nat64Out | Prog::InsideXdp => self.in0,
            Prog::InTc | Prog::InXdp => self.ext0,
        };
        self.ns.in_ns(|| n.run(prog, frame, Some(dev)))
    }
}

// ---------------------------------------------------------------- checking

/// What must come out.
#[derive(Clone, Copy)]
enum Want<'a> {
    /// Forwarded to the router (`TC_ACT_REDIRECT`, the router's MAC) as
    /// this IPv4 packet; DF and identification as [`df_and_id`] says.
    Out(&'a Packet),
    /// To the stack with exactly these bytes.
    Pass(&'a [u8]),
    /// To the stack, unchanged.
    Untouched,
    /// Dropped.
    Drop,
}

type Deltas = Vec<(Counter, u64)>;

#[track_caller]
fn assert_deltas(ctx: &str, before: &[u64], after: &[u64], want: &[(Counter, u64)]) {
    for c in Counter::ALL {
        let delta = after[c as usize].wrapping_sub(before[c as usize]);
        let exp: u64 = want.iter().filter(|(k, _)| *k == c).map(|(_, v)| v).sum();
        assert_eq!(
            delta,
            exp,
            "counter {} moved by {delta}, expected {exp}; {ctx}",
            c.name()
        );
    }
}

/// Runs `input` through `prog` in `gw`, checks the verdict, the output
/// (byte for byte, every checksum recomputed) and the counters (exactly
/// `deltas`); returns the output.
#[track_caller]
fn check(
    n: &N64,
    gw: &Gw,
    prog: Prog,
    what: &str,
    input: &[u8],
    want: Want,
    deltas: &[(Counter, u64)],
) -> Vec<u8> {
    let before = n.counters();
    let out = gw.run(n, prog, input);
    let after = n.counters();
    let ctx = || {
        format!(
            "{what} via {}\n--- input:\n{}",
            prog.name(),
            hex_dump(input, None)
        )
    };
    let want_verdict = match want {
        Want::Out(_) => redirected(prog),
        Want::Pass(_) | Want::Untouched => prog.pass(),
        Want::Drop => prog.drop(),
    };
    assert_eq!(
        out.verdict,
        want_verdict,
        "verdict {} but expected {}; {}\n--- output:\n{}",
        prog.verdict_name(out.verdict),
        prog.verdict_name(want_verdict),
        ctx(),
        hex_dump(&out.data, None)
    );
    let expected = match want {
        Want::Out(p) => Some(to_router(df_and_id(p.clone(), &out.data).frame())),
        Want::Pass(e) => Some(e.to_vec()),
        Want::Untouched => Some(input.to_vec()),
        Want::Drop => None,
    };
    if let Some(expected) = expected {
        if !matches!(want, Want::Untouched)
            && let Err(e) = check_ip_checksums(&out.data)
        {
            panic!("{}: output: {e}\n{}", ctx(), hex_dump(&out.data, None));
        }
        assert_frame_eq(&ctx(), &out.data, &expected);
    }
    assert_deltas(&ctx(), &before, &after, deltas);
    out.data
}

/// [`check`], then asserts NAT64's and NAPT's mapping tables are as before.
#[track_caller]
fn check_stateless(
    n: &N64,
    gw: &Gw,
    prog: Prog,
    what: &str,
    input: &[u8],
    want: Want,
    deltas: &[(Counter, u64)],
) {
    let before = n.tables();
    check(n, gw, prog, what, input, want, deltas);
    assert_eq!(
        n.tables(),
        before,
        "{what} via {}: changed the NAT64 or NAPT tables",
        prog.name()
    );
}

/// `frame` with the MAC addresses a redirect to the router leaves.
fn to_router(mut frame: Vec<u8>) -> Vec<u8> {
    frame[0..6].copy_from_slice(&MAC_RTR);
    frame[6..12].copy_from_slice(&MAC_EXT);
    frame
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

// ---------------------------------------------------------------- counters

/// An IPv6 packet translated, its stand-in's first mapping made.
fn out_new(bytes4: u64) -> Deltas {
    vec![
        (Counter::Nat64Out, 1),
        (Counter::EgressTranslated, 1),
        (Counter::EgressBytes, bytes4),
        (Counter::NaptMappingsCreated, 1),
        (Counter::NaptSessionsCreated, 1),
    ]
}

/// An IPv6 packet of a known session translated.
fn out_known(bytes4: u64) -> Deltas {
    vec![
        (Counter::Nat64Out, 1),
        (Counter::EgressTranslated, 1),
        (Counter::EgressBytes, bytes4),
    ]
}

/// An IPv4 packet of a known session translated to IPv6.
fn in_known(bytes4: u64) -> Deltas {
    vec![
        (Counter::IngressTranslated, 1),
        (Counter::IngressBytes, bytes4),
        (Counter::Nat64In, 1),
    ]
}

/// An ICMP error about a NAT64 flow translated to ICMPv6.
fn in_error(bytes4: u64) -> Deltas {
    vec![
        (Counter::IngressTranslated, 1),
        (Counter::IngressBytes, bytes4),
        (Counter::IcmpErrorsTranslated, 1),
        (Counter::Nat64In, 1),
    ]
}

fn only(c: Counter) -> Deltas {
    vec![(c, 1)]
}

// ---------------------------------------------------------------- flows

/// The transports NAT64 translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tcp,
    Udp,
    Echo,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Tcp, Kind::Udp, Kind::Echo];

    /// The IPv4 protocol (the NAPT key's).
    fn proto(self) -> u8 {
        match self {
            Kind::Tcp => proto::TCP,
            Kind::Udp => proto::UDP,
            Kind::Echo => proto::ICMP,
        }
    }
}

/// A flow of an IPv6 host to a server: its inside port (the echo
/// identifier for ICMP), the server's port (0 for ICMP) and the payload.
#[derive(Clone, Debug)]
struct Flow {
    kind: Kind,
    host: Ipv6Addr,
    port: u16,
    server: Ipv4Addr,
    rport: u16,
    data: Vec<u8>,
}

impl Flow {
    fn new(kind: Kind) -> Flow {
        let (port, rport) = match kind {
            Kind::Tcp => (40001, 443),
            Kind::Udp => (40002, 53),
            Kind::Echo => (0x1234, 0),
        };
        Flow {
            kind,
            host: H6,
            port,
            server: R,
            rport,
            data: b"nat64 payload".to_vec(),
        }
    }

    fn with_data(mut self, data: &[u8]) -> Flow {
        self.data = data.to_vec();
        self
    }

    fn with_port(mut self, port: u16) -> Flow {
        self.port = port;
        self
    }

    fn with_host(mut self, host: Ipv6Addr) -> Flow {
        self.host = host;
        self
    }

    fn with_server(mut self, server: Ipv4Addr) -> Flow {
        self.server = server;
        self
    }

    /// The transport of a packet from `(sport)` to `(dport)`: outbound a
    /// SYN, a datagram or an echo request; inbound a SYN-ACK, a datagram
    /// or an echo reply (the identifier is always the port of the host's
    /// side).
    fn segment(&self, sport: u16, dport: u16, outbound: bool, v6: bool) -> L6 {
        match self.kind {
            Kind::Tcp if outbound => L6::Tcp(Tcp::syn(sport, dport)),
            Kind::Tcp => L6::Tcp(Tcp {
                sport,
                dport,
                seq: 0x5a5a_0001,
                ack: 0x3a5c_7e02,
                flags: tcp_flags::SYN | tcp_flags::ACK,
                window: 65160,
                urgent: 0,
                options: vec![0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02],
                payload: Vec::new(),
            }),
            Kind::Udp => L6::Udp(Udp::new(sport, dport, &self.data)),
            Kind::Echo => {
                let id = if outbound { sport } else { dport };
                let typ = match (outbound, v6) {
                    (true, true) => icmpv6::ECHO_REQUEST,
                    (false, true) => icmpv6::ECHO_REPLY,
                    (true, false) => icmp::ECHO_REQUEST,
                    (false, false) => icmp::ECHO_REPLY,
                };
                L6::Icmp6(Icmp::echo(typ, id, 7, &self.data))
            }
        }
    }

    fn l4(&self, sport: u16, dport: u16, outbound: bool) -> L4 {
        match self.segment(sport, dport, outbound, false) {
            L6::Tcp(t) => L4::Tcp(t),
            L6::Udp(u) => L4::Udp(u),
            L6::Icmp6(i) => L4::Icmp(i),
            L6::Raw { .. } => unreachable!(),
        }
    }

    /// The host's IPv6 packet to the server at `dst6` (its address under
    /// the prefix).
    fn out6(&self, dst6: Ipv6Addr) -> Packet6 {
        Packet6::new(
            self.host,
            dst6,
            self.segment(self.port, self.rport, true, true),
        )
    }

    /// That packet as it must leave: from `public`, TTL `ttl`.
    fn out4(&self, public: Endpoint, ttl: u8) -> Packet {
        Packet::new(
            public.addr,
            self.server,
            self.l4(public.port, self.rport, true),
        )
        .with_ttl(ttl)
    }

    /// The server's answer to `public`.
    fn in4(&self, public: Endpoint) -> Packet {
        Packet::new(
            self.server,
            public.addr,
            self.l4(self.rport, public.port, false),
        )
    }

    /// That answer as the host must get it, from `src6`.
    fn in6(&self, src6: Ipv6Addr, hop_limit: u8) -> Packet6 {
        Packet6::new(
            src6,
            self.host,
            self.segment(self.rport, self.port, false, true),
        )
        .with_hop_limit(hop_limit)
    }

    /// The inside endpoint of this flow's NAPT binding, given the host's
    /// stand-in.
    fn inside(&self, stand_in: Ipv4Addr) -> Endpoint {
        Endpoint::new(stand_in, self.port, self.kind.proto())
    }
}

/// The IPv4 packet `p` with DF and identification as RFC 7915 section
/// 5.1 has NAT64 set them: beyond 1260 bytes DF set and identification 0;
/// up to 1260 DF clear and a random identification — the one the program
/// chose, read from its output `out`.
fn df_and_id(mut p: Packet, out: &[u8]) -> Packet {
    if p.total_len() > 1260 {
        p.ip.flags = IP_DF;
        p.ip.id = 0;
    } else {
        p.ip.flags = 0;
        p.ip.id = if out.len() >= ETH_HLEN + 6 {
            be16(out, ETH_HLEN + 4)
        } else {
            0
        };
    }
    p
}

/// Runs the first packet of `flow` (to `dst6`) out through `prog`: it must
/// leave translated, from the pool, with a new stand-in for the host and a
/// new NAPT binding for it, counted as such. Returns the stand-in and the
/// public endpoint.
#[track_caller]
fn open(
    n: &N64,
    gw: &Gw,
    prog: Prog,
    what: &str,
    flow: &Flow,
    dst6: Ipv6Addr,
) -> (Ipv4Addr, Endpoint) {
    let input = flow.out6(dst6);
    let had = n.stand_in(flow.host);
    let before = n.counters();
    let t0 = dataplane_now_ns();
    let out = gw.run(n, prog, &input.frame());
    let t1 = dataplane_now_ns();
    let after = n.counters();
    assert_eq!(
        out.verdict,
        TC_ACT_REDIRECT,
        "{what} via {}: verdict {}\n--- output:\n{}",
        prog.name(),
        prog.verdict_name(out.verdict),
        hex_dump(&out.data, None)
    );
    let s = n
        .stand_in(flow.host)
        .unwrap_or_else(|| panic!("{what}: no stand-in for {} in NAT64_HOSTS", flow.host));
    assert!(is_stand_in(be(s)), "{what}: stand-in {s} not in 0.0.0.0/8");
    let host = n
        .host_of(s)
        .unwrap_or_else(|| panic!("{what}: stand-in {s} not in NAT64_IDS"));
    assert_eq!(
        Ipv6Addr::from(host.addr),
        flow.host,
        "{what}: NAT64_IDS[{s}]"
    );
    match had {
        None => assert!(
            clock_window(t0, t1).contains(&host.created),
            "{what}: NAT64_IDS[{s}].created {} not in {t0}..{t1}",
            host.created
        ),
        Some(old) => assert_eq!(s, old, "{what}: the host's stand-in changed"),
    }
    let inside = flow.inside(s);
    let public = n
        .public_of(inside)
        .unwrap_or_else(|| panic!("{what}: no NAPT_OUT entry for {inside:?}"));
    assert_eq!(public.addr, POOL, "{what}: public address");
    assert_eq!(
        n.inside_of(public),
        Some(inside),
        "{what}: NAPT_IN[{public:?}]"
    );
    let mut expected = flow.out4(public, input.ip.hop_limit - 1);
    expected.ip.tos = input.ip.traffic_class;
    let expected = to_router(df_and_id(expected, &out.data).frame());
    if let Err(e) = check_ip_checksums(&out.data) {
        panic!("{what}: output: {e}\n{}", hex_dump(&out.data, None));
    }
    assert_frame_eq(&format!("{what} via {}", prog.name()), &out.data, &expected);
    let bytes = (out.data.len() - ETH_HLEN) as u64;
    assert_deltas(what, &before, &after, &out_new(bytes));
    (s, public)
}

/// A NAT64 instance (well-known prefix) and its gateway namespace with
/// `flow` open: its first packet sent out through `xnat_inside_tc`.
fn opened(tag: &str, flow: &Flow) -> (N64, Gw, Ipv4Addr, Endpoint) {
    opened_with(tag, flow, |_| {})
}

fn opened_with(
    tag: &str,
    flow: &Flow,
    tweak: impl FnOnce(&mut NatConfig),
) -> (N64, Gw, Ipv4Addr, Endpoint) {
    let mut n = N64::with(wkp_config(), tweak);
    let gw = Gw::for_nat(tag, &mut n);
    let (s, public) = open(&n, &gw, Prog::Inside, tag, flow, w(flow.server));
    (n, gw, s, public)
}

// ================================================================ IPv6 -> IPv4

/// TCP, UDP and ICMP echo, through `xnat_inside_tc` and through
/// `xnat_nat64_out_tc` run directly: the first packet gets the host a
/// stand-in and a binding and leaves translated (addresses, port or
/// identifier, header, every checksum), the next one reuses both.
#[test]
fn outbound_translates_tcp_udp_and_echo() {
    let gw = Gw::new("out", 1500);
    for prog in Prog::OUTBOUND {
        let mut n = N64::new();
        n.set_ext_ifindex(gw.ext0);
        for kind in Kind::ALL {
            let what = format!("{kind:?} via {prog:?}");
            let flow = Flow::new(kind);
            let (s, public) = open(&n, &gw, prog, &what, &flow, w(R));
            let again = flow
                .clone()
                .with_data(b"the second packet of the flow, a little longer");
            let expected = again.out4(public, 63);
            let nat64 = n.tables()[..2].to_vec();
            check(
                &n,
                &gw,
                prog,
                &format!("{what}, again"),
                &again.out6(w(R)).frame(),
                Want::Out(&expected),
                &out_known(expected.total_len()),
            );
            assert_eq!(
                n.tables()[..2],
                nat64,
                "{what}, again: NAT64 tables changed"
            );
            assert_eq!(n.public_of(flow.inside(s)), Some(public), "{what}, again");
            if kind != Kind::Tcp {
                // No payload at all: the 8-byte header alone.
                let empty = flow.clone().with_data(b"");
                let expected = empty.out4(public, 63);
                check(
                    &n,
                    &gw,
                    prog,
                    &format!("{what}, no payload"),
                    &empty.out6(w(R)).frame(),
                    Want::Out(&expected),
                    &out_known(28),
                );
            }
        }
    }
}

/// The IPv4 header NAT64 builds (RFC 7915 section 5.1): TOS from the
/// traffic class, the flow label dropped, TTL from the hop limit less the
/// forwarding's one; DF clear with a random identification up to 1260
/// bytes, DF set and identification 0 beyond.
#[test]
fn outbound_ipv4_header() {
    let mut n = N64::new();
    let gw = Gw::for_nat("hdr", &mut n);
    let flow = Flow::new(Kind::Udp);
    let (_, public) = open(&n, &gw, Prog::Inside, "open", &flow, w(R));

    let mut input = flow.out6(w(R));
    input.ip.traffic_class = 0xb8;
    input.ip.flow_label = 0x12345;
    input.ip.hop_limit = 17;
    let mut expected = flow.out4(public, 16);
    expected.ip.tos = 0xb8;
    check(
        &n,
        &gw,
        Prog::Inside,
        "traffic class 0xb8, flow label, hop limit 17",
        &input.frame(),
        Want::Out(&expected),
        &out_known(expected.total_len()),
    );

    // IPv4 total lengths around 1260: UDP payload = length - 28.
    for (len, df) in [(1259, false), (1260, false), (1261, true), (1400, true)] {
        let what = format!("IPv4 twin of {len} bytes");
        let big = flow.clone().with_data(&vec![0x5a; len - 28]);
        let expected = big.out4(public, 63);
        assert_eq!(expected.total_len(), len as u64);
        let out = check(
            &n,
            &gw,
            Prog::Inside,
            &what,
            &big.out6(w(R)).frame(),
            Want::Out(&expected),
            &out_known(len as u64),
        );
        let frag = be16(&out, ETH_HLEN + 6);
        assert_eq!(frag & IP_DF != 0, df, "{what}: DF (flags 0x{frag:04x})");
    }

    // The identification of short packets is drawn per packet.
    let ids: Vec<u16> = (0..4)
        .map(|i| {
            let out = gw.run(&n, Prog::Inside, &flow.out6(w(R)).frame());
            assert_eq!(out.verdict, TC_ACT_REDIRECT, "packet {i}");
            be16(&out.data, ETH_HLEN + 4)
        })
        .collect();
    assert!(
        ids.windows(2).any(|p| p[0] != p[1]),
        "four packets, one identification: {ids:?}"
    );
}

/// Each IPv6 host gets a stand-in of its own, in 0.0.0.0/8, named in both
/// tables; the same port of two hosts makes two bindings; answers reach
/// each host at its own address.
#[test]
fn each_host_has_its_own_stand_in() {
    let mut n = N64::new();
    let gw = Gw::for_nat("hosts", &mut n);
    let a = Flow::new(Kind::Udp);
    let b = Flow::new(Kind::Udp).with_host(H6B);
    let (sa, pa) = open(&n, &gw, Prog::Inside, "host A", &a, w(R));
    let (sb, pb) = open(&n, &gw, Prog::Inside, "host B", &b, w(R));
    assert_ne!(sa, sb, "two hosts, one stand-in");
    assert_ne!(pa, pb, "two hosts, one public endpoint");
    assert_eq!(n.tables()[0].len(), 2, "NAT64_HOSTS");
    assert_eq!(n.tables()[1].len(), 2, "NAT64_IDS");
    for (what, flow, public) in [("host A", &a, pa), ("host B", &b, pb)] {
        for prog in Prog::INGRESS {
            let input = flow.in4(public);
            check(
                &n,
                &gw,
                prog,
                &format!("answer to {what}"),
                &input.frame(),
                Want::Pass(&flow.in6(w(R), 64).frame()),
                &in_known(input.total_len()),
            );
        }
    }
}

/// `--max-ports-per-host` counts per IPv6 prefix (`--nat64-host-prefix`):
/// with /64, two hosts of one /64 share the cap, on the `HOST_PORTS`
/// entry of the stand-in of the /64's own address (reserved in
/// `NAT64_IDS`/`NAT64_HOSTS` like a host's), and the cap refuses the
/// second host's first mapping once the first holds it all; a host of
/// another /64 has a cap of its own. With 128 each address has its own.
#[test]
fn host_caps_count_per_prefix() {
    const OTHER_64: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10);
    let net_64: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0);
    for len in [64u8, 128] {
        let cfg = Nat64Config {
            host_prefix: len,
            ..wkp_config()
        };
        let mut n = N64::with(cfg, |c| c.max_ports_per_host = 2);
        let gw = Gw::for_nat(&format!("caps{len}"), &mut n);
        let what = |s: &str| format!("/{len}: {s}");
        let held = |n: &N64, s: Ipv4Addr| -> Option<u64> {
            bpf::get(&n.ebpf, LoadedRef::host_ports, &be(s))
        };
        // Host A takes the cap's two ports.
        let a1 = Flow::new(Kind::Udp);
        let a2 = Flow::new(Kind::Udp).with_port(40003);
        let (sa, _) = open(&n, &gw, Prog::Inside, &what("A, 1st"), &a1, w(R));
        open(&n, &gw, Prog::Inside, &what("A, 2nd"), &a2, w(R));
        // Host B, same /64.
        let b = Flow::new(Kind::Udp).with_host(H6B);
        if len == 64 {
            let key = n
                .stand_in(net_64)
                .unwrap_or_else(|| panic!("{}: no stand-in for the /64", what("")));
            assert_ne!(key, sa, "{}", what("the /64's key is not A's stand-in"));
            assert_eq!(held(&n, key), Some(2), "{}", what("HOST_PORTS[/64]"));
            assert_eq!(held(&n, sa), None, "{}", what("HOST_PORTS[A]"));
            check(
                &n,
                &gw,
                Prog::Inside,
                &what("B, over the /64's cap"),
                &b.out6(w(R)).frame(),
                Want::Drop,
                // Translated to IPv4, then refused by NAPT.
                &[(Counter::Nat64Out, 1), (Counter::DropHostPortCap, 1)],
            );
            assert_eq!(held(&n, key), Some(2), "{}", what("HOST_PORTS[/64] after"));
            assert_eq!(n.public_of(b.inside(n.stand_in(H6B).unwrap())), None);
        } else {
            assert_eq!(n.stand_in(net_64), None, "{}", what("no key for the /64"));
            assert_eq!(held(&n, sa), Some(2), "{}", what("HOST_PORTS[A]"));
            let (sb, _) = open(&n, &gw, Prog::Inside, &what("B, own cap"), &b, w(R));
            assert_eq!(held(&n, sb), Some(1), "{}", what("HOST_PORTS[B]"));
        }
        // A host of another /64 has its own cap either way.
        let c = Flow::new(Kind::Udp).with_host(OTHER_64);
        let (sc, _) = open(&n, &gw, Prog::Inside, &what("C, another /64"), &c, w(R));
        let c_key = if len == 64 {
            let net = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0);
            n.stand_in(net).expect("a stand-in for C's /64")
        } else {
            sc
        };
        assert_eq!(held(&n, c_key), Some(1), "{}", what("HOST_PORTS[C's key]"));
    }
}

// ================================================================ IPv4 -> IPv6

/// The answers of TCP, UDP and ICMP echo flows, through both ingress
/// programs: IPv6 from the server under the prefix to the host, the port
/// or identifier back to the host's, every checksum over the IPv6
/// pseudo-header, 20 bytes longer, to the stack.
#[test]
fn inbound_translates_tcp_udp_and_echo() {
    let mut n = N64::new();
    let gw = Gw::for_nat("in", &mut n);
    for kind in Kind::ALL {
        let flow = Flow::new(kind);
        let (_, public) = open(&n, &gw, Prog::Inside, &format!("{kind:?}"), &flow, w(R));
        for prog in Prog::INGRESS {
            let what = format!("{kind:?} answer");
            let input = flow.in4(public);
            let expected = flow.in6(w(R), 64);
            let out = check(
                &n,
                &gw,
                prog,
                &what,
                &input.frame(),
                Want::Pass(&expected.frame()),
                &in_known(input.total_len()),
            );
            assert_eq!(out.len(), input.frame().len() + 20, "{what}: growth");
        }
    }
}

/// The IPv6 header NAT64 builds (RFC 7915 section 4.1): traffic class from
/// the TOS, flow label 0, hop limit from the TTL (the stack decrements it
/// when it forwards); DF and identification have no IPv6 twin.
#[test]
fn inbound_ipv6_header() {
    let flow = Flow::new(Kind::Udp);
    let (n, gw, _, public) = opened("inhdr", &flow);
    for (tos, ttl) in [(0x28, 33), (0xff, 2), (0x00, 255)] {
        let mut input = flow.in4(public).with_ttl(ttl).with_id(0x4242);
        input.ip.tos = tos;
        let mut expected = flow.in6(w(R), ttl);
        expected.ip.traffic_class = tos;
        for prog in Prog::INGRESS {
            check(
                &n,
                &gw,
                prog,
                &format!("TOS 0x{tos:02x}, TTL {ttl}"),
                &input.frame(),
                Want::Pass(&expected.frame()),
                &in_known(input.total_len()),
            );
        }
    }
}

/// A packet whose TTL runs out at the gateway (1 or 0) is answered with ICMP
/// Time Exceeded in transit (RFC 7915 section 4: the translator decrements
/// the TTL before translating) from the public endpoint it was sent to,
/// quoting its header and 8 transport bytes exactly as sent, back where it
/// came (TC redirects it; XDP here has no device to send it back on:
/// dropped and counted). An ICMP error is never answered.
#[test]
fn inbound_ttl_ran_out_is_answered_with_time_exceeded() {
    for kind in [Kind::Udp, Kind::Tcp, Kind::Echo] {
        let flow = Flow::new(kind);
        let (n, gw, _, public) = opened(&format!("ttl{kind:?}"), &flow);
        for ttl in [1u8, 0] {
            let what = format!("{kind:?}, TTL {ttl}");
            let input = flow.in4(public).with_ttl(ttl).frame();
            let before = n.counters();
            let out = gw.run(&n, Prog::InTc, &input);
            assert_eq!(out.verdict, TC_ACT_REDIRECT, "{what}");
            let d = &out.data;
            assert_eq!(d.len(), ETH_HLEN + 56, "{what}: length");
            assert_eq!(
                (&d[0..6], &d[6..12]),
                (&input[6..12], &input[0..6]),
                "{what}: MACs"
            );
            let ip = ETH_HLEN;
            assert_eq!(&d[ip + 12..ip + 16], &public.addr.octets(), "{what}: from");
            assert_eq!(&d[ip + 16..ip + 20], &R.octets(), "{what}: to");
            assert_eq!(
                (d[ip + 9], d[ip + 20], d[ip + 21]),
                (1, 11, 0),
                "{what}: ICMP 11/0"
            );
            assert_eq!(
                &d[ip + 28..],
                &input[ip..ip + 28],
                "{what}: the quote as sent"
            );
            if let Err(e) = xnat_tests::frame::check_checksums(d) {
                panic!("{what}: {e}");
            }
            let after = n.counters();
            let sent = Counter::Nat64TimeExceededSent as usize;
            assert_eq!(after[sent] - before[sent], 1, "{what}: counted");

            let before = n.counters();
            let out = gw.run(&n, Prog::InXdp, &input);
            assert_eq!(out.verdict, XDP_DROP, "{what}, XDP");
            let after = n.counters();
            let dropped = Counter::Nat64DropTtlExpired as usize;
            assert_eq!(after[dropped] - before[dropped], 1, "{what}, XDP: counted");
        }
    }
}

/// An inbound frame padded to Ethernet's 60 bytes: the IPv4 total length,
/// not the frame, makes the IPv6 payload length and the checksums; the
/// padding stays behind the IPv6 packet.
#[test]
fn inbound_ethernet_padding_is_not_payload() {
    let mut n = N64::new();
    let gw = Gw::for_nat("padding", &mut n);
    for kind in [Kind::Udp, Kind::Echo] {
        let flow = Flow::new(kind).with_data(b"ab");
        let (_, public) = open(&n, &gw, Prog::Inside, &format!("{kind:?}"), &flow, w(R));
        let input = flow.in4(public);
        let mut frame = input.frame();
        assert!(frame.len() < 60, "{kind:?}: no padding needed");
        let pad = 60 - frame.len();
        frame.resize(60, 0);
        let mut expected = flow.in6(w(R), 64).frame();
        expected.extend(std::iter::repeat_n(0, pad));
        for prog in Prog::INGRESS {
            check(
                &n,
                &gw,
                prog,
                &format!("{kind:?} answer padded by {pad} bytes"),
                &frame,
                Want::Pass(&expected),
                &in_known(input.total_len()),
            );
        }
    }
}

/// A new host none of whose probed stand-ins is free is dropped and
/// counted (nat64_drop_hosts_full), and reserves nothing.
#[test]
fn outbound_no_free_stand_in() {
    let mut n = N64::new();
    let gw = Gw::for_nat("full", &mut n);
    let words: [u32; 4] = std::array::from_fn(|i| {
        u32::from_ne_bytes(H6.octets()[4 * i..4 * i + 4].try_into().unwrap())
    });
    let other = Nat64Host {
        addr: H6B.octets(),
        created: 1,
    };
    for i in 0..STAND_IN_PROBES {
        let s = stand_in_probe(&words, i);
        bpf::put(&mut n.ebpf, Loaded::nat64_ids, s, other);
    }
    check_stateless(
        &n,
        &gw,
        Prog::Inside,
        "every probed stand-in taken",
        &Flow::new(Kind::Udp).out6(w(R)).frame(),
        Want::Drop,
        &only(Counter::Nat64DropHostsFull),
    );
    // Another host probes other stand-ins.
    open(
        &n,
        &gw,
        Prog::Inside,
        "another host",
        &Flow::new(Kind::Udp).with_host(H6B),
        w(R),
    );
}

/// A UDP checksum that computes to 0 goes out as 0xffff (RFC 768), both
/// ways: payloads searched so that the translated datagram's checksum is 0.
#[test]
fn udp_checksum_computing_to_zero_is_sent_as_ffff() {
    let flow = Flow::new(Kind::Udp);
    let (n, gw, _, public) = opened("ffff", &flow);
    let search = |ok: &dyn Fn(&Flow) -> bool| -> Flow {
        (0..=u16::MAX)
            .map(|i| {
                flow.clone()
                    .with_data(&[b'z', b'e', (i >> 8) as u8, i as u8])
            })
            .find(|f| ok(f))
            .expect("no payload makes the checksum 0")
    };
    let udp_csum = |b: Vec<u8>| be16(&b, 6);
    let out_flow = search(&|f| udp_csum(f.out4(public, 63).l4_bytes()) == 0xffff);
    let expected = out_flow.out4(public, 63);
    check(
        &n,
        &gw,
        Prog::Inside,
        "outbound, IPv4 checksum computing to 0",
        &out_flow.out6(w(R)).frame(),
        Want::Out(&expected),
        &out_known(expected.total_len()),
    );
    let in_flow = search(&|f| udp_csum(f.in6(w(R), 64).l4_bytes()) == 0xffff);
    for prog in Prog::INGRESS {
        let input = in_flow.in4(public);
        check(
            &n,
            &gw,
            prog,
            "inbound, IPv6 checksum computing to 0",
            &input.frame(),
            Want::Pass(&in_flow.in6(w(R), 64).frame()),
            &in_known(input.total_len()),
        );
    }
}

// ================================================================ RFC 6052

/// Every prefix length of RFC 6052 (the RFC's own example prefixes): the
/// IPv4 destination taken from where the prefix length puts it, the IPv4
/// source of the answer put there; an address just outside the prefix is
/// not NAT64's; under a network-specific prefix, non-global IPv4 addresses
/// are translated too (RFC 6052 3.1 restricts only the well-known prefix).
#[test]
fn every_rfc6052_prefix_length() {
    let mut n = N64::new();
    let gw = Gw::for_nat("prefixes", &mut n);
    let private = Ipv4Addr::new(10, 1, 2, 3);
    for (i, (prefix, len, _)) in RFC6052_EXAMPLES.iter().enumerate() {
        let prefix: Ipv6Addr = prefix.parse().unwrap();
        let len = u32::from(*len);
        n.set_nat64(Nat64Config::new(prefix.octets(), len as u8).unwrap());
        for (j, server) in [R, private].into_iter().enumerate() {
            let what = format!("{prefix}/{len}, server {server}");
            let flow = Flow::new(Kind::Udp)
                .with_port(41000 + (i * 2 + j) as u16)
                .with_server(server);
            let dst6 = embed(prefix, len, server);
            let (_, public) = open(&n, &gw, Prog::Inside, &what, &flow, dst6);
            for prog in Prog::INGRESS {
                let input = flow.in4(public);
                check(
                    &n,
                    &gw,
                    prog,
                    &format!("{what}, answer"),
                    &input.frame(),
                    Want::Pass(&flow.in6(dst6, 64).frame()),
                    &in_known(input.total_len()),
                );
            }
        }
        // The last byte of the prefix changed: another network.
        let mut outside = embed(prefix, len, R).octets();
        outside[len as usize / 8 - 1] ^= 1;
        let input = Flow::new(Kind::Udp).out6(Ipv6Addr::from(outside));
        check_stateless(
            &n,
            &gw,
            Prog::Inside,
            &format!("{prefix}/{len}: to {}", Ipv6Addr::from(outside)),
            &input.frame(),
            Want::Untouched,
            &[],
        );
    }
}

// ================================================================ IPv6 -> IPv4: refused

/// An IPv6 UDP datagram from the host to `dst6`, hop limit 64.
fn udp6(dst6: Ipv6Addr) -> Packet6 {
    Packet6::udp(H6, dst6, Udp::new(40002, 53, b"refused?"))
}

/// `bytes` after the fixed header of a packet from the host to `dst6`,
/// next header `next`.
fn raw6(dst6: Ipv6Addr, next: u8, bytes: &[u8]) -> Packet6 {
    Packet6::raw(H6, dst6, next, bytes)
}

/// A UDP header and a little payload (checksum not meaningful), after an
/// extension header.
const UDP_AFTER_EXT: [u8; 12] = [0x9c, 0x42, 0, 53, 0, 12, 0x12, 0x34, 1, 2, 3, 4];

/// `ext` (an extension header whose next header is UDP) followed by
/// [`UDP_AFTER_EXT`].
fn with_ext(ext: &[u8]) -> Vec<u8> {
    let mut v = ext.to_vec();
    v.extend_from_slice(&UDP_AFTER_EXT);
    v
}

/// IPv6 packets to the prefix that NAT64 refuses, and the counter each
/// moves: dropped, never routed as IPv6, no stand-in given and no binding
/// made.
fn outbound_refused() -> Vec<(String, Vec<u8>, Counter)> {
    let mut v: Vec<(String, Vec<u8>, Counter)> = Vec::new();
    // Non-global IPv4 under the well-known prefix (RFC 6052 3.1), at the
    // edges of each range.
    for a in [
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.0.1",
        "192.168.255.255",
        "100.64.0.1",
        "100.127.255.254",
        "127.0.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "169.254.0.1",
        "169.254.255.254",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
    ] {
        let v4: Ipv4Addr = a.parse().unwrap();
        v.push((
            format!("to non-global {a}"),
            udp6(w(v4)).frame(),
            Counter::Nat64DropNonGlobal,
        ));
    }
    let dst = w(R);
    // Extension headers (fragment headers are translated since cfafabb:
    // not covered here).
    for (name, next, ext) in [
        (
            "hop-by-hop options",
            proto::HOPOPTS,
            [proto::UDP, 0, 1, 4, 0, 0, 0, 0],
        ),
        (
            "routing header",
            proto::ROUTING,
            [proto::UDP, 0, 4, 0, 0, 0, 0, 0],
        ),
        (
            "destination options",
            proto::DSTOPTS,
            [proto::UDP, 0, 1, 4, 0, 0, 0, 0],
        ),
    ] {
        v.push((
            name.to_string(),
            raw6(dst, next, &with_ext(&ext)).frame(),
            Counter::Nat64DropUnsupported,
        ));
    }
    // Other transports.
    for (name, next) in [
        ("GRE", proto::GRE),
        ("ESP", 50),
        ("SCTP", 132),
        ("no next header", 59),
    ] {
        v.push((
            name.to_string(),
            raw6(dst, next, &[0; 16]).frame(),
            Counter::Nat64DropUnsupported,
        ));
    }
    // ICMPv6 other than echo: errors, neighbour discovery, MLD, private.
    for (name, typ, code) in [
        ("ICMPv6 destination unreachable", icmpv6::DEST_UNREACH, 4),
        ("ICMPv6 packet too big", icmpv6::PACKET_TOO_BIG, 0),
        ("ICMPv6 time exceeded", icmpv6::TIME_EXCEEDED, 0),
        ("ICMPv6 parameter problem", icmpv6::PARAM_PROBLEM, 0),
        ("ICMPv6 MLD query", 130, 0),
        ("ICMPv6 router solicitation", 133, 0),
        ("ICMPv6 neighbour solicitation", icmpv6::NEIGHBOR_SOLICIT, 0),
        ("ICMPv6 private type 200", 200, 0),
    ] {
        let m = Icmp::error(typ, code, [0; 4], &udp6(dst).ip_bytes()[..48]);
        v.push((
            name.to_string(),
            Packet6::icmp6(H6, dst, m).frame(),
            Counter::Nat64DropUnsupported,
        ));
    }
    // Sources that never leave their link, or none.
    for src in ["fe80::1", "febf:ffff::1", "ff02::1", "ff0e::1234", "::"] {
        let src: Ipv6Addr = src.parse().unwrap();
        v.push((
            format!("from {src}"),
            udp6(dst).with_src(src).frame(),
            Counter::Nat64DropUnsupported,
        ));
    }
    // Transport headers cut short (the IPv6 payload length consistent
    // with the frame), and UDP without a checksum (RFC 8200 8.1).
    let tcp = Packet6::tcp(H6, dst, Tcp::syn(40001, 443)).l4_bytes();
    let udp = udp6(dst).l4_bytes();
    let echo = Packet6::icmp6(H6, dst, Icmp::echo(icmpv6::ECHO_REQUEST, 1, 1, b"")).l4_bytes();
    for (name, next, bytes) in [
        ("TCP header of 19 bytes", proto::TCP, &tcp[..19]),
        ("TCP header of 1 byte", proto::TCP, &tcp[..1]),
        ("UDP header of 7 bytes", proto::UDP, &udp[..7]),
        ("ICMPv6 echo of 7 bytes", proto::ICMPV6, &echo[..7]),
    ] {
        v.push((
            name.to_string(),
            raw6(dst, next, bytes).frame(),
            Counter::Nat64DropMalformed,
        ));
    }
    v.push((
        "UDP without checksum".to_string(),
        Packet6::udp(H6, dst, Udp::new(40002, 53, b"no sum").without_checksum()).frame(),
        Counter::Nat64DropMalformed,
    ));
    v
}

#[test]
fn outbound_refused_packets_are_dropped_and_counted() {
    let mut n = N64::new();
    let gw = Gw::for_nat("refused", &mut n);
    for prog in Prog::OUTBOUND {
        for (what, frame, counter) in outbound_refused() {
            check_stateless(&n, &gw, prog, &what, &frame, Want::Drop, &only(counter));
        }
    }
    assert!(
        n.tables().iter().all(Vec::is_empty),
        "refused packets left entries"
    );
}

/// Global IPv4 addresses next to the non-global ranges are translated
/// under the well-known prefix; so is a source address that is neither
/// link-local nor multicast (fec0::/10, next to fe80::/10).
#[test]
fn outbound_global_neighbours_of_refused_ranges() {
    let mut n = N64::new();
    let gw = Gw::for_nat("global", &mut n);
    for (i, a) in [
        "9.255.255.255",
        "11.0.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "126.255.255.255",
        "128.0.0.1",
        "169.253.255.255",
        "169.255.0.1",
        "172.15.255.255",
        "172.32.0.1",
        "192.167.255.255",
        "192.169.0.1",
        "223.255.255.255",
        "1.0.0.1",
    ]
    .iter()
    .enumerate()
    {
        let server: Ipv4Addr = a.parse().unwrap();
        let flow = Flow::new(Kind::Udp)
            .with_server(server)
            .with_port(42000 + i as u16);
        open(&n, &gw, Prog::Inside, &format!("to {a}"), &flow, w(server));
    }
    let site_local: Ipv6Addr = "fec0::1".parse().unwrap();
    let flow = Flow::new(Kind::Udp).with_host(site_local);
    open(&n, &gw, Prog::Inside, "from fec0::1", &flow, w(R));
}

/// IPv6 that is not NAT64's passes untouched and uncounted: not to the
/// prefix; a hop limit of 1 or 0 (the stack answers Time Exceeded); and
/// everything while NAT64 is off, or its programs not loaded.
#[test]
fn outbound_passed_untouched() {
    let mut n = N64::new();
    let gw = Gw::for_nat("passed", &mut n);
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for dst in [
        "2001:db8:2::1",
        "64:ff9b:1::c633:640a",
        "64:ff9a::cb00:710a",
        "64:ff9b:0:0:1::cb00:710a",
        "ff02::1",
    ] {
        let dst: Ipv6Addr = dst.parse().unwrap();
        cases.push((format!("UDP to {dst}"), udp6(dst).frame()));
        let ns = Icmp::error(icmpv6::NEIGHBOR_SOLICIT, 0, [0; 4], &[0; 16]);
        cases.push((
            format!("ICMPv6 135 to {dst}"),
            Packet6::icmp6(H6, dst, ns).frame(),
        ));
    }
    for hop in [1, 0] {
        for kind in Kind::ALL {
            let input = Flow::new(kind).out6(w(R)).with_hop_limit(hop);
            cases.push((format!("{kind:?}, hop limit {hop}"), input.frame()));
        }
        // Refused otherwise: the hop limit is looked at first.
        let m = Icmp::error(icmpv6::NEIGHBOR_SOLICIT, 0, [0; 4], &[0; 16]);
        cases.push((
            format!("ICMPv6 135 to the prefix, hop limit {hop}"),
            Packet6::icmp6(H6, w(R), m).with_hop_limit(hop).frame(),
        ));
    }
    for prog in Prog::OUTBOUND {
        for (what, frame) in &cases {
            check_stateless(&n, &gw, prog, what, frame, Want::Untouched, &[]);
        }
    }

    // NAT64 off: even what it would translate or refuse.
    let mut off = wkp_config();
    off.enabled = 0;
    n.set_nat64(off);
    let translated = Flow::new(Kind::Udp).out6(w(R)).frame();
    let refused = udp6(w(Ipv4Addr::new(10, 0, 0, 1))).frame();
    for prog in Prog::OUTBOUND {
        for (what, frame) in [
            ("NAT64 off, UDP", &translated),
            ("NAT64 off, to 10.0.0.1", &refused),
        ] {
            check_stateless(&n, &gw, prog, what, frame, Want::Untouched, &[]);
        }
    }

    // The programs not loaded: xnat_inside_tc's tail call fails.
    let mut bare = N64::without_programs(wkp_config());
    bare.set_ext_ifindex(gw.ext0);
    for (what, frame) in [
        ("no NAT64 programs, UDP", &translated),
        ("no NAT64 programs, to 10.0.0.1", &refused),
    ] {
        check_stateless(&bare, &gw, Prog::Inside, what, frame, Want::Untouched, &[]);
    }
}

/// A packet whose IPv4 twin would exceed the external link's MTU goes to
/// the stack untouched (it answers Packet Too Big); one that fits exactly
/// is translated (with DF: it is longer than 1260 bytes).
#[test]
fn outbound_too_big_for_the_external_link() {
    let mut n = N64::new();
    let gw = Gw::new("mtu", 1400);
    n.set_ext_ifindex(gw.ext0);
    let flow = Flow::new(Kind::Udp);
    let (_, public) = open(&n, &gw, Prog::Inside, "open", &flow, w(R));
    for prog in Prog::OUTBOUND {
        // IPv4 length = UDP payload + 28.
        let fits = flow.clone().with_data(&vec![0x11; 1400 - 28]);
        let expected = fits.out4(public, 63);
        check(
            &n,
            &gw,
            prog,
            "IPv4 twin of 1400 bytes, MTU 1400",
            &fits.out6(w(R)).frame(),
            Want::Out(&expected),
            &out_known(1400),
        );
        let over = flow.clone().with_data(&vec![0x11; 1401 - 28]);
        check_stateless(
            &n,
            &gw,
            prog,
            "IPv4 twin of 1401 bytes, MTU 1400",
            &over.out6(w(R)).frame(),
            Want::Untouched,
            &[],
        );
        for kind in [Kind::Tcp, Kind::Echo] {
            let over = match kind {
                Kind::Echo => Flow::new(kind).with_data(&vec![0x22; 1401 - 28]).out6(w(R)),
                _ => {
                    let mut t = Tcp::data(40001, 443, &vec![0x33; 1401 - 40]);
                    t.flags = tcp_flags::ACK;
                    Packet6::tcp(H6, w(R), t)
                }
            };
            check_stateless(
                &n,
                &gw,
                prog,
                &format!("{kind:?}, IPv4 twin of 1401 bytes, MTU 1400"),
                &over.frame(),
                Want::Untouched,
                &[],
            );
        }
    }
}

/// Without a route for the translated packet, it is dropped and counted
/// as nat64_drop_no_route, never passed on (the binding stays: NAT44 made
/// it before the route lookup).
#[test]
fn outbound_without_a_route_is_dropped() {
    let mut n = N64::new();
    let gw = Gw::for_nat("noroute", &mut n);
    gw.ns.ip(&["route", "del", "default"]);
    let flow = Flow::new(Kind::Udp);
    let input = flow.out6(w(R));
    let bytes = input.total_len() - 20;
    let mut deltas = out_new(bytes);
    deltas.push((Counter::Nat64DropNoRoute, 1));
    check(
        &n,
        &gw,
        Prog::Inside,
        "no route to the server",
        &input.frame(),
        Want::Drop,
        &deltas,
    );
    assert!(n.stand_in(H6).is_some(), "no stand-in after a translation");
}

/// An IPv6 packet to the prefix whose payload length does not fit the
/// frame (more bytes claimed than present), or is 0 (no payload: a
/// jumbogram without its option, or a bare "no next header"), cannot be
/// translated: like every packet to the prefix NAT64 cannot translate, it
/// must be dropped and counted, never handed to the stack, which would
/// route it as IPv6 (the module's own rule, nat64/outbound.rs).
#[test]
fn outbound_bad_payload_length_to_the_prefix_is_dropped() {
    let mut n = N64::new();
    let gw = Gw::for_nat("badlen", &mut n);
    let full = Flow::new(Kind::Udp).out6(w(R)).frame();
    let mut cut = full.clone();
    cut.truncate(full.len() - 4);
    let empty = raw6(w(R), 59, &[]).frame();
    for prog in Prog::OUTBOUND {
        for (what, frame, counter) in [
            (
                "UDP cut 4 bytes short of its payload length",
                &cut,
                Counter::Nat64DropMalformed,
            ),
            (
                "payload length 0, no next header",
                &empty,
                Counter::Nat64DropUnsupported,
            ),
        ] {
            check_stateless(&n, &gw, prog, what, frame, Want::Drop, &only(counter));
        }
    }
}

// ================================================================ IPv4 -> IPv6: refused

/// IPv4 packets of a NAT64 flow that NAT64 cannot translate: dropped and
/// counted after NAT44 translated them (fragments and UDP without checksum
/// are translated since cfafabb and 0cc2fc3: not covered here). NAT44 counts them as it would any
/// packet it translated (`ingress_translated`).
#[test]
fn inbound_refused_packets_are_dropped_and_counted() {
    // Endpoint-independent filtering: a non-global source reaches the
    // binding through NAT44.
    let flow = Flow::new(Kind::Udp);
    let (mut n, gw, s, public) = opened_with("inrefused", &flow, |c| {
        c.filtering = Filtering::EndpointIndependent.code();
    });
    let answer = flow.in4(public);
    let nat44 = |p: &Packet| -> Deltas {
        vec![
            (Counter::IngressTranslated, 1),
            (Counter::IngressBytes, p.total_len()),
        ]
    };
    let with = |p: &Packet, c: Counter| -> Deltas {
        let mut d = nat44(p);
        d.push((c, 1));
        d
    };
    let options = answer.clone().with_ip_options(&[0x94, 0x04, 0, 0]);
    let from_private = Packet::udp(
        Ipv4Addr::new(10, 1, 2, 3),
        POOL,
        Udp::new(53, public.port, b"private"),
    );
    let cases: Vec<(&str, Packet, Deltas)> = vec![
        (
            "IPv4 options",
            options.clone(),
            with(&options, Counter::Nat64DropUnsupported),
        ),
        (
            "from non-global 10.1.2.3",
            from_private.clone(),
            with(&from_private, Counter::Nat64DropNonGlobal),
        ),
    ];
    for prog in Prog::INGRESS {
        for (what, input, deltas) in &cases {
            let nat64 = n.tables()[..2].to_vec();
            let mut deltas = deltas.clone();
            if input.ip.src != R && prog == Prog::INGRESS[0] {
                // NAT44 admits the new remote (endpoint-independent
                // filtering) with a session of its own, once.
                deltas.push((Counter::NaptSessionsCreated, 1));
            }
            check(&n, &gw, prog, what, &input.frame(), Want::Drop, &deltas);
            assert_eq!(
                n.tables()[..2],
                nat64,
                "{what} via {}: NAT64 tables",
                prog.name()
            );
        }
    }

    // NAT64 off: the stand-in's packets have nowhere to go.
    let mut off = wkp_config();
    off.enabled = 0;
    n.set_nat64(off);
    for prog in Prog::INGRESS {
        check(
            &n,
            &gw,
            prog,
            "NAT64 off",
            &answer.frame(),
            Want::Drop,
            &with(&answer, Counter::Nat64DropNoHost),
        );
    }
    n.set_nat64(wkp_config());

    // The stand-in freed (NAT64_IDS), its binding still there.
    n.forget_host(s);
    for prog in Prog::INGRESS {
        check(
            &n,
            &gw,
            prog,
            "stand-in no longer in NAT64_IDS",
            &answer.frame(),
            Want::Drop,
            &with(&answer, Counter::Nat64DropNoHost),
        );
    }
}

/// Without the NAT64 programs (their program arrays empty), a packet NAT44
/// translated to a stand-in is dropped and counted, never handed to the
/// stack with a stand-in for its destination.
#[test]
fn inbound_to_a_stand_in_without_nat64_programs() {
    let mut n = N64::without_programs(wkp_config());
    let gw = Gw::new("inbare", 1500);
    let inside = Endpoint::new(Ipv4Addr::new(0, 1, 2, 3), 40002, proto::UDP);
    let public = Endpoint::new(POOL, 50002, proto::UDP);
    // A port forward to the stand-in: admitted from any remote.
    bpf::put(
        &mut n.ebpf,
        Loaded::napt_out,
        inside.key(),
        public.as_mapping(MAPPING_FORWARD, 0, 0),
    );
    bpf::put(
        &mut n.ebpf,
        Loaded::napt_in,
        public.key(),
        inside.as_inside(MAPPING_FORWARD),
    );
    let input = Packet::udp(R, POOL, Udp::new(53, public.port, b"to a stand-in"));
    for prog in Prog::INGRESS {
        let mut deltas = vec![
            (Counter::IngressTranslated, 1),
            (Counter::IngressBytes, input.total_len()),
            (Counter::Nat64DropNoHost, 1),
        ];
        if prog == Prog::INGRESS[0] {
            deltas.push((Counter::NaptSessionsCreated, 1));
        }
        check(
            &n,
            &gw,
            prog,
            "a forward to a stand-in, no NAT64 programs",
            &input.frame(),
            Want::Drop,
            &deltas,
        );
    }
}

// ================================================================ ICMP errors, IPv4 -> IPv6

/// The IPv4 datagram of `flow` as it left through `public`, as a router
/// quotes it: TTL `ttl`, TOS `tos`.
fn sent4(flow: &Flow, public: Endpoint, ttl: u8, tos: u8) -> Packet {
    let mut p = flow.out4(public, ttl).with_id(0x5151);
    p.ip.tos = tos;
    p.ip.flags = 0;
    p
}

/// The IPv6 packet the host sent, as the translated error must quote it:
/// hop limit and traffic class from the quoted TTL and TOS.
fn sent6(flow: &Flow, ttl: u8, tos: u8) -> Packet6 {
    flow.out6(w(flow.server))
        .with_hop_limit(ttl)
        .with_traffic_class(tos)
}

/// An ICMP error's type, code and 4 bytes after the checksum.
type IcmpHead = (u8, u8, [u8; 4]);

fn mtu_field(mtu: u16) -> [u8; 4] {
    let [a, b] = mtu.to_be_bytes();
    [0, 0, a, b]
}

/// ICMP errors and their ICMPv6 twins (RFC 7915 section 4.2).
fn error_translations() -> Vec<(String, IcmpHead, IcmpHead)> {
    let mut v: Vec<(String, IcmpHead, IcmpHead)> = vec![
        (
            "time exceeded in transit".into(),
            (11, 0, [0; 4]),
            (3, 0, [0; 4]),
        ),
        (
            "reassembly time exceeded".into(),
            (11, 1, [0; 4]),
            (3, 1, [0; 4]),
        ),
        ("port unreachable".into(), (3, 3, [0; 4]), (1, 4, [0; 4])),
        (
            "protocol unreachable".into(),
            (3, 2, [0; 4]),
            (
                icmpv6::PARAM_PROBLEM,
                icmpv6::UNKNOWN_NEXT_HEADER,
                [0, 0, 0, 6],
            ),
        ),
    ];
    for (mtu, mtu6) in [
        (1400u16, 1420u32),
        (1261, 1281),
        (1260, 1280),
        (1259, 1280),
        (576, 1280),
        (0, 1280),
        (65515, 65535),
    ] {
        v.push((
            format!("fragmentation needed, MTU {mtu}"),
            (3, 4, mtu_field(mtu)),
            (icmpv6::PACKET_TOO_BIG, 0, mtu6.to_be_bytes()),
        ));
    }
    for code in [9, 10, 13, 15] {
        v.push((
            format!("administratively prohibited (3/{code})"),
            (3, code, [0; 4]),
            (icmpv6::DEST_UNREACH, icmpv6::ADMIN_PROHIBITED, [0; 4]),
        ));
    }
    for code in [0, 1, 5, 6, 7, 8, 11, 12] {
        v.push((
            format!("unreachable 3/{code}"),
            (3, code, [0; 4]),
            (icmpv6::DEST_UNREACH, icmpv6::NO_ROUTE, [0; 4]),
        ));
    }
    // Parameter Problem, pointer (12/0) or bad length (12/2): erroneous
    // header field, the pointer moved onto the IPv6 header (RFC 7915
    // figure 3).
    for (code, at, at6) in [
        (0u8, 0u8, 0u32),
        (0, 1, 1),
        (2, 2, 4),
        (0, 3, 4),
        (0, 8, 7),
        (0, 9, 6),
        (0, 12, 8),
        (0, 15, 8),
        (0, 16, 24),
        (2, 19, 24),
    ] {
        v.push((
            format!("parameter problem 12/{code}, pointer {at}"),
            (12, code, [at, 0, 0, 0]),
            (icmpv6::PARAM_PROBLEM, 0, at6.to_be_bytes()),
        ));
    }
    v
}

/// One instance with a UDP, a TCP and an echo flow of the host open.
fn with_three_flows(tag: &str) -> (N64, Gw, Vec<(Flow, Endpoint)>) {
    let mut n = N64::new();
    let gw = Gw::for_nat(tag, &mut n);
    let flows = Kind::ALL
        .into_iter()
        .map(|kind| {
            let flow = Flow::new(kind);
            let (_, public) = open(&n, &gw, Prog::Inside, &format!("{kind:?}"), &flow, w(R));
            (flow, public)
        })
        .collect();
    (n, gw, flows)
}

/// Runs the error `head` from `from` about `flow`'s datagram (quoted TTL
/// `qttl`, `quote` bytes of it, all if `None`) through both ingress
/// programs; it must become the ICMPv6 error `head6` quoting the host's
/// IPv6 packet (`quote` + 20 bytes of it), checksums and all.
#[allow(clippy::too_many_arguments)]
#[track_caller]
fn check_error(
    n: &N64,
    gw: &Gw,
    what: &str,
    from: Ipv4Addr,
    (flow, public): (&Flow, Endpoint),
    head: IcmpHead,
    head6: IcmpHead,
    qttl: u8,
    quote: Option<usize>,
) {
    let offending = sent4(flow, public, qttl, 0x20);
    let input = Packet::icmp_error(from, POOL, head.0, head.1, head.2, &offending, quote);
    let mut expected = Packet6::icmp6_error(
        w(from),
        flow.host,
        head6.0,
        head6.1,
        head6.2,
        &sent6(flow, qttl, 0x20),
        quote.map(|q| q + 20),
    );
    expected.ip.traffic_class = input.ip.tos;
    expected.ip.hop_limit = input.ip.ttl;
    let expected = expected.frame();
    for prog in Prog::INGRESS {
        let out = check(
            n,
            gw,
            prog,
            what,
            &input.frame(),
            Want::Pass(&expected),
            &in_error(input.total_len()),
        );
        assert_eq!(out.len(), input.frame().len() + 40, "{what}: growth");
    }
}

/// The quoted IPv6 header's traffic class is the quoted IPv4 header's TOS
/// (RFC 7915 section 4.2: the inner header is translated as a packet's
/// own, 4.1: traffic class = TOS), whatever the TOS: 0x00, 0x20, 0xb8.
#[test]
fn icmp_error_quoted_traffic_class() {
    let (n, gw, flows) = with_three_flows("errtclass");
    for (flow, public) in &flows {
        for tos in [0x00, 0x20, 0xb8] {
            let what = format!(
                "time exceeded about {:?}, quoted TOS 0x{tos:02x}",
                flow.kind
            );
            let offending = sent4(flow, *public, 1, tos);
            let input = Packet::icmp_error(ROUTER, POOL, 11, 0, [0; 4], &offending, None);
            let mut expected =
                Packet6::icmp6_error(w(ROUTER), H6, 3, 0, [0; 4], &sent6(flow, 1, tos), None);
            expected.ip.traffic_class = input.ip.tos;
            for prog in Prog::INGRESS {
                check(
                    &n,
                    &gw,
                    prog,
                    &what,
                    &input.frame(),
                    Want::Pass(&expected.frame()),
                    &in_error(input.total_len()),
                );
            }
        }
    }
}

/// Every ICMP error type and code NAT64 translates, about a UDP flow,
/// quoted whole: the ICMPv6 type and code, the MTU of a Packet Too Big
/// (+20, at least 1280), the pointer of a Parameter Problem, the quoted
/// IPv6 header (the host as source, the server under the prefix as
/// destination, hop limit and traffic class from the quote), the quoted
/// UDP checksum over the IPv6 pseudo-header, the ICMPv6 checksum.
#[test]
fn icmp_errors_translated_by_type() {
    let (n, gw, flows) = with_three_flows("errtypes");
    let (flow, public) = &flows[1];
    assert_eq!(flow.kind, Kind::Udp);
    for (what, head, head6) in error_translations() {
        let qttl = if head.0 == 11 { 1 } else { 62 };
        check_error(
            &n,
            &gw,
            &what,
            ROUTER,
            (flow, *public),
            head,
            head6,
            qttl,
            None,
        );
    }
    // From the server itself.
    check_error(
        &n,
        &gw,
        "port unreachable from the server",
        R,
        (flow, *public),
        (3, 3, [0; 4]),
        (1, 4, [0; 4]),
        62,
        None,
    );
}

/// Errors about TCP, UDP and echo flows, quoting the whole datagram or
/// only its start: the quoted transport checksum translated where the
/// quote holds it (TCP's only from 18 bytes on), a quoted echo request
/// turned into an ICMPv6 one.
#[test]
fn icmp_errors_translated_by_quoted_transport() {
    let (n, gw, flows) = with_three_flows("errquotes");
    for (flow, public) in &flows {
        let full = sent4(flow, *public, 1, 0).total_len() as usize;
        let mut quotes = vec![None, Some(28)];
        if flow.kind == Kind::Tcp {
            // The TCP header (SYN with options, 40 bytes): its checksum in
            // the quote, the options cut.
            quotes.extend([Some(20 + 18), Some(20 + 20), Some(full - 1)]);
        } else {
            quotes.push(Some(full - 3));
        }
        for quote in quotes {
            for (name, head, head6) in [
                ("time exceeded", (11, 0, [0; 4]), (3, 0, [0; 4])),
                (
                    "fragmentation needed, MTU 1300",
                    (3, 4, mtu_field(1300)),
                    (2, 0, 1320u32.to_be_bytes()),
                ),
            ] {
                let what = format!("{name} about {:?}, quote {quote:?}", flow.kind);
                check_error(
                    &n,
                    &gw,
                    &what,
                    ROUTER,
                    (flow, *public),
                    head,
                    head6,
                    1,
                    quote,
                );
            }
        }
    }
}

/// Errors about NAT64 flows that are not translated: dropped, counted
/// (after NAT44 translated them, counted there as any error).
#[test]
fn icmp_errors_refused() {
    let (n, gw, flows) = with_three_flows("errrefused");
    let (flow, public) = &flows[1];
    let offending = sent4(flow, *public, 1, 0);
    let error = |from: Ipv4Addr, head: IcmpHead| {
        Packet::icmp_error(from, POOL, head.0, head.1, head.2, &offending, None)
    };
    let mut with_options = offending.clone().with_ip_options(&[0x94, 0x04, 0, 0]);
    with_options.ip.ttl = 1;
    let quoting_options = Packet::icmp_error(ROUTER, POOL, 11, 0, [0; 4], &with_options, None);
    let cases = [
        (
            "precedence violation (3/14)",
            error(ROUTER, (3, 14, [0; 4])),
            Counter::Nat64DropUnsupported,
        ),
        (
            "parameter problem at the identification (12/0, pointer 4)",
            error(ROUTER, (12, 0, [4, 0, 0, 0])),
            Counter::Nat64DropUnsupported,
        ),
        (
            "parameter problem at the header checksum (12/0, pointer 10)",
            error(ROUTER, (12, 0, [10, 0, 0, 0])),
            Counter::Nat64DropUnsupported,
        ),
        (
            "parameter problem past the header (12/0, pointer 20)",
            error(ROUTER, (12, 0, [20, 0, 0, 0])),
            Counter::Nat64DropUnsupported,
        ),
        (
            "missing a required option (12/1)",
            error(ROUTER, (12, 1, [0, 0, 0, 0])),
            Counter::Nat64DropUnsupported,
        ),
        (
            "time exceeded from non-global 10.9.8.7",
            error(Ipv4Addr::new(10, 9, 8, 7), (11, 0, [0; 4])),
            Counter::Nat64DropNonGlobal,
        ),
        (
            "time exceeded from non-global 100.64.0.1",
            error(Ipv4Addr::new(100, 64, 0, 1), (11, 0, [0; 4])),
            Counter::Nat64DropNonGlobal,
        ),
        (
            "quoted header with options",
            quoting_options,
            Counter::Nat64DropUnsupported,
        ),
    ];
    for prog in Prog::INGRESS {
        for (what, input, counter) in &cases {
            let mut deltas = in_error(input.total_len());
            deltas.retain(|(c, _)| *c != Counter::Nat64In);
            deltas.push((*counter, 1));
            check_stateless(&n, &gw, prog, what, &input.frame(), Want::Drop, &deltas);
        }
    }
}

/// ICMPv6 Parameter Problem from the host about the server's packet
/// (RFC 7915 section 5.2): erroneous header field (4/0) becomes ICMP
/// Parameter Problem (12/0) with the pointer moved onto the IPv4 header
/// (figure 6), to the server from the public endpoint, its checksum right;
/// a pointer into the flow label or past the header, and an unrecognised
/// option (4/2), are dropped and counted.
#[test]
fn icmpv6_parameter_problem_both_pointers() {
    let gw = Gw::new("pp6", 1500);
    let mut n = N64::new();
    n.set_ext_ifindex(gw.ext0);
    let flow = Flow::new(Kind::Udp);
    let (_, public) = open(&n, &gw, Prog::Inside, "open", &flow, w(R));
    let got = flow.in6(w(R), 60);
    let error6 = |code: u8, at: u32| {
        Packet6::icmp6_error(
            H6,
            w(R),
            icmpv6::PARAM_PROBLEM,
            code,
            at.to_be_bytes(),
            &got,
            None,
        )
        .frame()
    };
    for (at6, at4) in [
        (0u32, 0u8),
        (1, 1),
        (4, 2),
        (5, 2),
        (6, 9),
        (7, 8),
        (8, 12),
        (23, 12),
        (24, 16),
        (39, 16),
    ] {
        let what = format!("erroneous header field at {at6}");
        let out = gw.run(&n, Prog::Inside, &error6(0, at6));
        assert_eq!(out.verdict, TC_ACT_REDIRECT, "{what}");
        let d = &out.data;
        let ip = ETH_HLEN;
        assert_eq!(d[ip + 9], proto::ICMP, "{what}: protocol");
        assert_eq!(
            &d[ip + 12..ip + 16],
            &public.addr.octets(),
            "{what}: source"
        );
        assert_eq!(&d[ip + 16..ip + 20], &R.octets(), "{what}: destination");
        let icmp = ip + 20;
        assert_eq!((d[icmp], d[icmp + 1]), (12, 0), "{what}: type and code");
        assert_eq!(d[icmp + 4..icmp + 8], [at4, 0, 0, 0], "{what}: pointer");
        if let Err(e) = xnat_tests::frame::check_checksums(d) {
            panic!("{what}: {e}");
        }
        // The quote: the server's datagram to the public endpoint.
        assert_eq!(
            &d[icmp + 8 + 12..icmp + 8 + 16],
            &R.octets(),
            "{what}: quoted source"
        );
        assert_eq!(
            &d[icmp + 8 + 16..icmp + 8 + 20],
            &public.addr.octets(),
            "{what}: quoted destination"
        );
    }
    for (what, frame) in [
        ("pointer into the flow label", error6(0, 2)),
        ("pointer past the header", error6(0, 40)),
        ("unrecognised option", error6(2, 40)),
    ] {
        let before = n.counters();
        let out = gw.run(&n, Prog::Inside, &frame);
        assert_eq!(out.verdict, TC_ACT_SHOT, "{what}");
        let after = n.counters();
        let c = Counter::Nat64DropUnsupported as usize;
        assert_eq!(after[c] - before[c], 1, "{what}: counted");
    }
}

// ================================================================ CHECKSUM_COMPLETE skbs

/// Runs `frame` through the TC program `prog` twice in `gw` (no device:
/// the namespace's loopback), plainly and as a CHECKSUM_COMPLETE skb
/// (`xnat_tests::skb_csum::run_complete`: the kernel fails the run if the
/// program left `skb->csum` disagreeing with the bytes); both runs must
/// agree and the second must keep `skb->csum` in step.
#[track_caller]
fn check_complete(n: &N64, gw: &Gw, prog: Prog, what: &str, frame: &[u8]) {
    use std::os::fd::AsFd as _;
    use xnat_tests::skb_csum::{Complete, run_complete};
    let p: &aya::programs::SchedClassifier = n
        .ebpf
        .program(prog.name())
        .unwrap_or_else(|| panic!("no program {}", prog.name()))
        .try_into()
        .expect("a TC program");
    let fd = p.fd().expect("loaded");
    let plain = gw.ns.in_ns(|| n.run(prog, frame, None));
    let complete = gw
        .ns
        .in_ns(|| run_complete(fd.as_fd(), frame, frame.len() + 512))
        .unwrap_or_else(|e| panic!("{what} via {}: {e:#}", prog.name()));
    match complete {
        Complete::Ran(o) => {
            assert_eq!(
                o.verdict,
                plain.verdict,
                "{what} via {}: verdict",
                prog.name()
            );
            // An IPv4 packet of up to 1260 bytes gets a random
            // identification (and so its own header checksum) each run.
            let mask = |d: &[u8]| {
                let mut d = d.to_vec();
                if d.len() >= ETH_HLEN + 20 && d[12..14] == [0x08, 0x00] {
                    d[ETH_HLEN + 4..ETH_HLEN + 6].fill(0);
                    d[ETH_HLEN + 10..ETH_HLEN + 12].fill(0);
                }
                d
            };
            assert_frame_eq(
                &format!("{what} via {}", prog.name()),
                &mask(&o.data),
                &mask(&plain.data),
            );
        }
        Complete::CsumStale => panic!(
            "{what} via {}: skb->csum left stale on a CHECKSUM_COMPLETE skb",
            prog.name()
        ),
    }
}

/// Real NICs hand TC ingress CHECKSUM_COMPLETE skbs; a translation at
/// `xnat_ingress_tc` must keep `skb->csum` in step with the bytes, as
/// NAT44's does (tests/packet_csum_state.rs): the stack checks the
/// transport checksums of such skbs with it (netfilter's conntrack does,
/// and reports a mismatch as "hw csum failure").
#[test]

fn inbound_keeps_skb_csum_in_step() {
    let (n, gw, flows) = with_three_flows("completein");
    // The harness itself: a frame the program leaves alone.
    let other = Packet::udp(R, Ipv4Addr::new(198, 51, 100, 99), Udp::new(1, 2, b"x"));
    check_complete(&n, &gw, Prog::InTc, "IPv4 not ours", &other.frame());
    for (flow, public) in &flows {
        let answer = flow.in4(*public).frame();
        check_complete(
            &n,
            &gw,
            Prog::InTc,
            &format!("{:?} answer", flow.kind),
            &answer,
        );
        let offending = sent4(flow, *public, 1, 0);
        let error = Packet::icmp_error(ROUTER, POOL, 11, 0, [0; 4], &offending, None).frame();
        check_complete(
            &n,
            &gw,
            Prog::InTc,
            &format!("time exceeded about {:?}", flow.kind),
            &error,
        );
    }
}

/// The same for IPv6 -> IPv4 at `xnat_inside_tc` (an inside NIC's TC
/// ingress).
#[test]

fn outbound_keeps_skb_csum_in_step() {
    let (n, gw, flows) = with_three_flows("completeout");
    // The harness itself: a frame the program leaves alone.
    let other = udp6("2001:db8:2::1".parse().unwrap()).frame();
    check_complete(&n, &gw, Prog::Inside, "IPv6 not to the prefix", &other);
    for (flow, _) in &flows {
        for prog in Prog::OUTBOUND {
            let frame = flow.out6(w(R)).frame();
            check_complete(&n, &gw, prog, &format!("{:?}", flow.kind), &frame);
        }
    }
}

// ================================================ IPv4 -> IPv6 too big, split

/// The pieces RFC 7915 section 4.1 makes of an IPv4 packet without DF too
/// big for an inside link of `mtu` bytes, as frames: `payload` is the
/// packet's part of the translated datagram's transport bytes (all of it
/// for a whole datagram), starting `offset` bytes into the datagram; each
/// piece carries up to (mtu - 48) rounded down to 8 bytes of it after an
/// IPv6 header (next header 44) and a fragment header (the transport's
/// protocol, the offset plus the piece's position, M on all but the last,
/// which gets `last_more`; the identification the IPv4 one, high 16 bits
/// zero).
#[allow(clippy::too_many_arguments)]
fn pieces(
    ip6: &xnat_tests::frame::Ipv6,
    next: u8,
    payload: &[u8],
    offset: usize,
    last_more: bool,
    id: u16,
    mtu: usize,
) -> Vec<Vec<u8>> {
    let size = (mtu - 48) & !7;
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let more = if i + 1 < n { true } else { last_more };
            let off = offset + i * size;
            let mut b = ip6.header(44, 8 + c.len());
            b.push(next);
            b.push(0);
            b.extend_from_slice(&((off as u16) | u16::from(more)).to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(c);
            xnat_tests::frame::ethernet(0x86dd, &b)
        })
        .collect()
}

/// NAT64 (well-known prefix) with an inside MTU of `mtu`, its gateway
/// namespace, and `flow` open.
fn opened_mtu(tag: &str, flow: &Flow, mtu: u32) -> (N64, Gw, Endpoint) {
    let mut cfg = wkp_config();
    cfg.inside_mtu = mtu;
    let mut n = N64::with(cfg, |_| {});
    let gw = Gw::for_nat(tag, &mut n);
    // Opened by a short packet (the flow's own may not fit outward).
    let opener = flow.clone().with_data(b"open");
    let (_, public) = open(&n, &gw, Prog::Inside, tag, &opener, w(flow.server));
    (n, gw, public)
}

/// Runs `input` through `prog` as if it came in on ext0 and returns the
/// outcome with the fragments the program sent meanwhile (clones it
/// re-injected at ext0's ingress, seen there by a packet socket), in the
/// order they came; waits (up to a deadline) for `clones` of them.
fn run_split(n: &N64, gw: &Gw, prog: Prog, input: &[u8], clones: usize) -> (Outcome, Vec<Vec<u8>>) {
    use std::time::{Duration, Instant};
    use xnat_tests::capture::RawCapture;
    let tap = RawCapture::open_link(&gw.ns, gw.ext0);
    let out = gw.run(n, prog, input);
    // Only IPv6 fragments count (the veth peer's router solicitations and
    // the like pass by too).
    let is_piece = |f: &[u8]| f.len() > ETH_HLEN + 48 && f[12..14] == [0x86, 0xdd] && f[20] == 44;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while got.len() < clones {
        let left = deadline.saturating_duration_since(Instant::now());
        match tap.recv_within(left) {
            Some(f) if is_piece(&f) => got.push(f),
            Some(_) => {}
            None => break,
        }
    }
    // Anything more would be a piece too many.
    got.extend(
        tap.collect_for(Duration::from_millis(100))
            .into_iter()
            .filter(|f| is_piece(f)),
    );
    (out, got)
}

/// Checks a split: TC passes the last piece on and has sent the others;
/// XDP (which cannot send several packets) hands the packet to the TC
/// program behind it (`xnat_ingress_handoff_tc`, which the e2e tests run).
#[track_caller]
fn check_split(
    n: &N64,
    gw: &Gw,
    what: &str,
    input: &Packet,
    want: &[Vec<u8>],
    nat44: &[(Counter, u64)],
) {
    let frame = input.frame();
    for prog in Prog::INGRESS {
        let before = n.counters();
        let (out, sent) = run_split(n, gw, prog, &frame, want.len().saturating_sub(1));
        let after = n.counters();
        let ctx = format!("{what} via {}", prog.name());
        if prog.is_xdp() {
            // Handed to the TC program behind: passed as NAT44 left it,
            // the mark in the 4 bytes of metadata before the frame.
            assert_eq!(out.verdict, XDP_PASS, "{ctx}: verdict");
            assert!(sent.is_empty(), "{ctx}: sent {} fragments", sent.len());
            assert_eq!(
                out.data[..4],
                nat_common::nat64::XDP_HANDOFF_SPLIT.to_ne_bytes(),
                "{ctx}: the mark"
            );
            assert_eq!(out.data.len(), frame.len() + 4, "{ctx}: the frame");
            assert_deltas(&ctx, &before, &after, nat44);
            continue;
        }
        assert_eq!(
            out.verdict,
            TC_ACT_OK,
            "{ctx}: verdict {}",
            prog.verdict_name(out.verdict)
        );
        assert_eq!(sent.len() + 1, want.len(), "{ctx}: number of pieces");
        let mut all = sent;
        all.push(out.data.clone());
        for (i, (got, exp)) in all.iter().zip(want).enumerate() {
            assert_frame_eq(&format!("{ctx}: piece {i} of {}", want.len()), got, exp);
        }
        let mut d: Deltas = nat44.to_vec();
        d.push((Counter::Nat64In, 1));
        d.push((Counter::Nat64Fragmented, 1));
        d.push((Counter::Nat64FragmentsSent, want.len() as u64));
        assert_deltas(&ctx, &before, &after, &d);
    }
}

/// The NAT44 counters of an inbound packet of a known session.
fn nat44_in(bytes4: u64) -> Deltas {
    vec![
        (Counter::IngressTranslated, 1),
        (Counter::IngressBytes, bytes4),
    ]
}

/// RFC 7915 4.1: an IPv4 datagram without DF too big for the inside link
/// (1280 here) becomes IPv6 fragments that fit it, at the boundary and
/// beyond: UDP (its checksum translated over the whole datagram, then
/// split), ICMP echo, a UDP datagram without checksum (unfragmented: its
/// checksum computed over the whole datagram first, RFC 7915 4.5); one
/// that fits unfragmented stays whole.
#[test]
fn inbound_without_df_too_big_is_split_into_fragments() {
    for kind in [Kind::Udp, Kind::Echo] {
        for (data_len, nr) in [(1260 - 28, 1), (1261 - 28, 2), (1400, 2), (3000, 3)] {
            let flow = Flow::new(kind).with_data(&vec![0x5a; data_len]);
            let tag = format!("split{}{data_len}", kind as u8);
            let (n, gw, public) = opened_mtu(&tag, &flow, 1280);
            let mut input = flow.in4(public).with_id(0xbeef);
            input.ip.flags = 0;
            let six = flow.in6(w(R), 64);
            let what = format!("{kind:?} of {} bytes", input.total_len());
            if nr == 1 {
                for prog in Prog::INGRESS {
                    check(
                        &n,
                        &gw,
                        prog,
                        &what,
                        &input.frame(),
                        Want::Pass(&six.frame()),
                        &in_known(input.total_len()),
                    );
                }
                continue;
            }
            let want = pieces(
                &six.ip,
                six.l4.next_header(),
                &six.l4_bytes(),
                0,
                false,
                0xbeef,
                1280,
            );
            assert_eq!(want.len(), nr, "{what}: the test's own pieces");
            check_split(&n, &gw, &what, &input, &want, &nat44_in(input.total_len()));
            if kind == Kind::Udp && data_len == 1400 {
                // Without checksum: computed over the whole datagram
                // (which the translator has), then split.
                let mut zero = input.clone();
                if let L4::Udp(u) = &mut zero.l4 {
                    u.no_checksum = true;
                }
                let what = format!("{what} without checksum");
                check_split(&n, &gw, &what, &zero, &want, &nat44_in(zero.total_len()));
            }
        }
    }
}

/// An IPv4 fragment without DF too big for the inside link: each piece
/// keeps the fragment's offset plus its position, M on all but the last
/// (which keeps the fragment's own M); the first fragment's transport
/// checksum translated (it covers the whole datagram), the later ones'
/// payload untouched. Inside MTU 1400 (pieces of 1352 bytes).
#[test]
fn inbound_fragment_too_big_is_split_further() {
    let flow = Flow::new(Kind::Udp).with_data(&vec![0xa5; 6000]);
    let (n, gw, public) = opened_mtu("splitfrag", &flow, 1400);
    let whole = flow.in4(public).with_id(0x1234);
    let six = flow.in6(w(R), 64);
    let l4 = six.l4_bytes();
    // 1480-byte IPv4 fragments (as a 1500-byte link makes them).
    for (off, len, more) in [
        (0usize, 1480usize, true),
        (1480, 1480, true),
        (5920, 88, false),
    ] {
        let frag = whole.fragment(off, len, more);
        let end = (off + len).min(l4.len());
        let what = format!("fragment at {off}, {} bytes, M {more}", end - off);
        if end - off + 48 <= 1400 {
            // Fits as one IPv6 fragment: translated as today.
            let mut b = six.ip.header(44, 8 + end - off);
            b.extend_from_slice(&[17, 0]);
            b.extend_from_slice(&((off as u16) | u16::from(more)).to_be_bytes());
            b.extend_from_slice(&[0, 0, 0x12, 0x34]);
            b.extend_from_slice(&l4[off..end]);
            let exp = xnat_tests::frame::ethernet(0x86dd, &b);
            let mut d = in_known(frag.total_len());
            if off > 0 {
                d.push((Counter::FragmentsTranslated, 1));
            }
            for prog in Prog::INGRESS {
                check(&n, &gw, prog, &what, &frag.frame(), Want::Pass(&exp), &d);
            }
            continue;
        }
        let want = pieces(&six.ip, 17, &l4[off..end], off, more, 0x1234, 1400);
        assert_eq!(want.len(), 2, "{what}: the test's own pieces");
        let mut nat44 = nat44_in(frag.total_len());
        if off > 0 {
            nat44.push((Counter::FragmentsTranslated, 1));
        }
        check_split(&n, &gw, &what, &frag, &want, &nat44);
    }
}

/// What is not split: the first fragment of a UDP datagram without
/// checksum (no checksum can be computed over fragments: unsupported,
/// RFC 6146 3.4, as when it fits). XDP hands it to the TC program behind
/// it, which refuses it so.
#[test]
fn inbound_split_exceptions() {
    let flow = Flow::new(Kind::Udp).with_data(&vec![1; 3000]);
    let (n, gw, public) = opened_mtu("splitexc", &flow, 1280);
    let mut whole = flow.in4(public);
    if let L4::Udp(u) = &mut whole.l4 {
        u.no_checksum = true;
    }
    let first = whole.fragment(0, 1480, true);
    let mut d = nat44_in(first.total_len());
    d.push((Counter::Nat64DropUnsupported, 1));
    check(
        &n,
        &gw,
        Prog::InTc,
        "first fragment without UDP checksum",
        &first.frame(),
        Want::Drop,
        &d,
    );
    let before = n.counters();
    let out = gw.run(&n, Prog::InXdp, &first.frame());
    assert_eq!(out.verdict, XDP_PASS, "XDP hands it over");
    assert_eq!(
        out.data[..4],
        nat_common::nat64::XDP_HANDOFF_SPLIT.to_ne_bytes()
    );
    assert_deltas("XDP", &before, &n.counters(), &nat44_in(first.total_len()));
}

/// CHECKSUM_COMPLETE at the boundary: a packet that fits unsplit keeps
/// skb->csum in step. (A split one leaves CHECKSUM_COMPLETE for
/// CHECKSUM_NONE — `bpf_skb_change_tail` does that, net/core/filter.c
/// `bpf_skb_trim_rcsum` — which the test run's check of skb->csum, made
/// whatever the state, cannot tell from a stale sum; the stack checks the
/// reassembled datagram's checksum itself then, as e2e_nat64 shows.)
#[test]
fn inbound_split_boundary_keeps_skb_csum_in_step() {
    let flow = Flow::new(Kind::Udp).with_data(&vec![7; 1260 - 28]);
    let (n, gw, public) = opened_mtu("splitcsum", &flow, 1280);
    let mut input = flow.in4(public);
    input.ip.flags = 0;
    check_complete(&n, &gw, Prog::InTc, "UDP of 1260 bytes", &input.frame());
}

/// An IPv4 packet to an IPv6 host whose header checksum is wrong (NAT44
/// keeps it exactly as wrong) is dropped, `nat64_drop_malformed`: its
/// header is replaced, so it would otherwise become a valid IPv6 packet.
#[test]
fn inbound_bad_ipv4_header_checksum_is_dropped() {
    let flow = Flow::new(Kind::Udp);
    let (n, gw, _, public) = opened("badsum", &flow);
    let input = flow.in4(public);
    let mut frame = input.frame();
    frame[ETH_HLEN + 10] ^= 0x5a;
    for prog in Prog::INGRESS {
        let mut d = nat44_in(input.total_len());
        d.push((Counter::Nat64DropMalformed, 1));
        check(
            &n,
            &gw,
            prog,
            "header checksum wrong",
            &frame,
            Want::Drop,
            &d,
        );
    }
}

// ================================================================ fast path

/// An answer NAT64 forwarded itself (`--fast-path`): the translated IPv6
/// packet with one hop less, to the host's MAC from in0's.
fn to_host(p: Packet6, mac: [u8; 6]) -> Vec<u8> {
    let mut f = p.frame();
    f[0..6].copy_from_slice(&mac);
    f[6..12].copy_from_slice(&MAC_IN0);
    f
}

/// NAT64 with the fast path on, in a gateway that forwards IPv6 to in0
/// (in0 taking XDP redirects: `xdp_target`), with `flows` open.
fn fast(tag: &str, xdp_target: bool, flows: &[Flow]) -> (N64, Gw, Vec<Endpoint>) {
    let mut n = N64::new();
    let gw = Gw::for_nat(tag, &mut n).with_ipv6();
    n.set_fast_path(true);
    if xdp_target {
        let in0 = gw.in0;
        gw.ns.in_ns(|| n.add_xdp_target(in0));
    }
    let publics = flows
        .iter()
        .map(|f| open(&n, &gw, Prog::Inside, tag, f, w(f.server)).1)
        .collect();
    (n, gw, publics)
}

fn fast_in(bytes4: u64) -> Deltas {
    let mut d = in_known(bytes4);
    d.push((Counter::Nat64FastPathIn, 1));
    d
}

/// Runs the IPv4 packet `input` through `prog`; checks the verdict, the
/// output byte for byte (every checksum recomputed) and the counters.
#[track_caller]
#[allow(clippy::too_many_arguments)]
fn check_fast(
    n: &N64,
    gw: &Gw,
    prog: Prog,
    what: &str,
    input: &Packet,
    verdict: u32,
    expected: &[u8],
    deltas: &[(Counter, u64)],
) {
    let before = n.counters();
    let out = gw.run(n, prog, &input.frame());
    let what = format!("{what} via {}", prog.name());
    assert_eq!(
        out.verdict,
        verdict,
        "{what}: {} instead of {}\n{}",
        prog.verdict_name(out.verdict),
        prog.verdict_name(verdict),
        hex_dump(&out.data, None)
    );
    if let Err(e) = check_ip_checksums(&out.data) {
        panic!("{what}: output: {e}\n{}", hex_dump(&out.data, None));
    }
    assert_frame_eq(&what, &out.data, expected);
    assert_deltas(&what, &before, &n.counters(), deltas);
}

/// "Redirected" for `prog`.
fn redirected(prog: Prog) -> u32 {
    if prog.is_xdp() {
        XDP_REDIRECT
    } else {
        TC_ACT_REDIRECT
    }
}

/// With `--fast-path`, the answers of established TCP, UDP and echo flows
/// go from the external interface's ingress straight to the host (TC and
/// XDP): translated as without it, the hop limit one less (the hop the
/// stack would have taken), the MACs from the FIB and neighbour table,
/// redirected; counted in nat64_fast_path_in.
#[test]
fn inbound_fast_path_forwards_to_the_host() {
    let flows: Vec<Flow> = Kind::ALL.iter().map(|k| Flow::new(*k)).collect();
    let (n, gw, publics) = fast("fastin", true, &flows);
    for (flow, public) in flows.iter().zip(&publics) {
        for prog in Prog::INGRESS {
            let input = flow.in4(*public).with_ttl(17);
            check_fast(
                &n,
                &gw,
                prog,
                &format!("{:?} answer", flow.kind),
                &input,
                redirected(prog),
                &to_host(flow.in6(w(R), 16), MAC_H6),
                &fast_in(input.total_len()),
            );
        }
    }
    // The route's MTU exactly (1280 bytes as IPv6) still goes.
    let c = Flow::new(Kind::Udp).with_host(H6C);
    let (n, gw, p) = fast("fastmtu", true, std::slice::from_ref(&c));
    let fits = c.clone().with_data(&[0x77; 1280 - 48]);
    for prog in Prog::INGRESS {
        let input = fits.in4(p[0]);
        check_fast(
            &n,
            &gw,
            prog,
            "1280 bytes on a route with MTU 1280",
            &input,
            redirected(prog),
            &to_host(fits.in6(w(R), 63), MAC_H6C),
            &fast_in(input.total_len()),
        );
    }
}

/// What the fast path leaves to the stack, translated as without it (the
/// hop limit as the TTL was; TTL 1 never gets here: xnat answers it, see
/// `inbound_ttl_ran_out_is_answered_with_time_exceeded`): a packet over
/// its route's MTU (the stack answers Packet Too Big), an ICMP
/// error, and from XDP a device not in XDP_TARGETS or a host without a
/// neighbour entry — which TC hands to the kernel to resolve
/// (`bpf_redirect_neigh`, the MACs left for it). With the fast path off,
/// nothing is forwarded here.
#[test]
fn inbound_fast_path_falls_back_to_the_stack() {
    let a = Flow::new(Kind::Udp);
    let b = Flow::new(Kind::Udp).with_host(H6B);
    let c = Flow::new(Kind::Udp).with_host(H6C);
    for xdp_target in [true, false] {
        let tag = if xdp_target { "fastback" } else { "fastnotgt" };
        let (mut n, gw, p) = fast(tag, xdp_target, &[a.clone(), b.clone(), c.clone()]);
        for prog in Prog::INGRESS {
            let stack = |what: &str, input: &Packet, expected: Packet6| {
                check_fast(
                    &n,
                    &gw,
                    prog,
                    what,
                    input,
                    prog.pass(),
                    &expected.frame(),
                    &in_known(input.total_len()),
                );
            };
            let big = c.clone().with_data(&[0x77; 1281 - 48]);
            stack(
                "1281 bytes on a route with MTU 1280",
                &big.in4(p[2]),
                big.in6(w(R), 64),
            );
            let no_neigh = b.in4(p[1]);
            if prog.is_xdp() {
                stack("no neighbour entry", &no_neigh, b.in6(w(R), 64));
            } else {
                check_fast(
                    &n,
                    &gw,
                    prog,
                    "no neighbour entry",
                    &no_neigh,
                    TC_ACT_REDIRECT,
                    &b.in6(w(R), 63).frame(),
                    &fast_in(no_neigh.total_len()),
                );
            }
            if prog.is_xdp() && !xdp_target {
                stack("in0 not in XDP_TARGETS", &a.in4(p[0]), a.in6(w(R), 64));
            }
            let offending = sent4(&a, p[0], 1, 0);
            let error = Packet::icmp_error(ROUTER, POOL, 11, 0, [0; 4], &offending, None);
            let before = n.counters();
            let out = gw.run(&n, prog, &error.frame());
            assert_eq!(out.verdict, prog.pass(), "an ICMP error via {prog:?}");
            assert_eq!(
                n.counters()[Counter::Nat64FastPathIn as usize],
                before[Counter::Nat64FastPathIn as usize],
                "an ICMP error via {prog:?}"
            );
        }
        n.set_fast_path(false);
        for prog in Prog::INGRESS {
            let input = a.in4(p[0]);
            check_fast(
                &n,
                &gw,
                prog,
                "fast path off",
                &input,
                prog.pass(),
                &a.in6(w(R), 64).frame(),
                &in_known(input.total_len()),
            );
        }
    }
}

/// A CHECKSUM_COMPLETE skb forwarded by the fast path: `skb->csum` in
/// step with the bytes, the hop limit's decrement included.
#[test]
fn inbound_fast_path_keeps_skb_csum_in_step() {
    let flows: Vec<Flow> = Kind::ALL.iter().map(|k| Flow::new(*k)).collect();
    let (n, gw, publics) = fast("fastcsum", false, &flows);
    for (flow, public) in flows.iter().zip(&publics) {
        let before = n.counters()[Counter::Nat64FastPathIn as usize];
        check_complete(
            &n,
            &gw,
            Prog::InTc,
            &format!("{:?} answer", flow.kind),
            &flow.in4(*public).frame(),
        );
        assert_eq!(
            n.counters()[Counter::Nat64FastPathIn as usize],
            before + 2,
            "{:?}: not forwarded by the fast path",
            flow.kind
        );
    }
}

/// With `--fast-path` and `--inside-hook xdp`, the inside interface's XDP
/// program translates the packets of established TCP and UDP flows itself
/// (RFC 7915 as in TC, then NAPT) and sends them out of the external
/// interface: the same packet TC sends, counted as NAT64's and NAT44's
/// translations and in nat64_fast_path_out. An IPv4 packet from the
/// stand-in is still dropped there: only NAT64 sends from one.
#[test]
fn outbound_xdp_fast_path_sends_established_flows() {
    let mut n = N64::new();
    let gw = Gw::for_nat("xdpout", &mut n);
    n.set_fast_path(true);
    let ext0 = gw.ext0;
    gw.ns.in_ns(|| n.add_xdp_target(ext0));
    for kind in [Kind::Tcp, Kind::Udp] {
        let flow = Flow::new(kind);
        let (s, public) = open(&n, &gw, Prog::Inside, &format!("{kind:?}"), &flow, w(R));
        for len in [10, 1300] {
            let again = flow.clone().with_data(&vec![0x42; len]);
            let mut input = again.out6(w(R)).with_hop_limit(9);
            input.ip.traffic_class = 0x20;
            let mut expected = again.out4(public, 8);
            expected.ip.tos = 0x20;
            let mut deltas = out_known(expected.total_len());
            deltas.push((Counter::Nat64FastPathOut, 1));
            let before = n.tables();
            check(
                &n,
                &gw,
                Prog::InsideXdp,
                &format!("{kind:?}, {len} bytes of payload"),
                &input.frame(),
                Want::Out(&expected),
                &deltas,
            );
            // NAPT_OUT's timestamps move; nothing is added or removed.
            let after = n.tables();
            for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                let keys = |t: &Vec<(Vec<u8>, Vec<u8>)>| -> Vec<Vec<u8>> {
                    t.iter().map(|(k, _)| k.clone()).collect()
                };
                assert_eq!(keys(b), keys(a), "{kind:?}: table {i} changed");
            }
        }
        // The same ports from the stand-in as IPv4: not NAT64's, dropped.
        let from_stand_in = flow.clone().with_data(b"x");
        let input = Packet::new(s, R, from_stand_in.l4(flow.port, flow.rport, true));
        check(
            &n,
            &gw,
            Prog::InsideXdp,
            &format!("{kind:?}: IPv4 from the stand-in {s}"),
            &input.frame(),
            Want::Drop,
            &only(Counter::EgressDroppedMalformed),
        );
    }
}

/// What XDP leaves to TC, untouched (the frame, the tables and the
/// counters as they were): a new host, a new flow, ICMPv6 echo, a
/// fragment header, hop limit 1, a UDP datagram without checksum, a packet
/// too big for the external link, to an address outside the prefix, a
/// non-global address under the well-known prefix; with the external
/// interface not taking XDP frames or the fast path off, everything.
#[test]
fn outbound_xdp_fast_path_leaves_the_rest_to_tc() {
    let mut n = N64::new();
    let gw = Gw::new("xdprest", 1400);
    n.set_ext_ifindex(gw.ext0);
    n.set_fast_path(true);
    let ext0 = gw.ext0;
    gw.ns.in_ns(|| n.add_xdp_target(ext0));
    let udp = Flow::new(Kind::Udp);
    open(&n, &gw, Prog::Inside, "UDP", &udp, w(R));
    let echo = Flow::new(Kind::Echo);
    open(&n, &gw, Prog::Inside, "echo", &echo, w(R));
    let mut no_csum = udp.out6(w(R)).frame();
    no_csum[ETH_HLEN + 46..ETH_HLEN + 48].fill(0);
    // An atomic fragment of the flow's datagram.
    let datagram = udp.out6(w(R)).frame()[ETH_HLEN + 40..].to_vec();
    let fragment = raw6(
        w(R),
        44,
        &[&[17, 0, 0, 0, 0, 0, 0, 1][..], &datagram].concat(),
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a new host", udp.clone().with_host(H6B).out6(w(R)).frame()),
        (
            "a new flow",
            udp.clone().with_port(40999).out6(w(R)).frame(),
        ),
        ("ICMPv6 echo", echo.out6(w(R)).frame()),
        ("a fragment header", fragment.frame()),
        ("hop limit 1", udp.out6(w(R)).with_hop_limit(1).frame()),
        ("UDP without checksum", no_csum),
        (
            "too big for the external link",
            udp.clone().with_data(&[1; 1400]).out6(w(R)).frame(),
        ),
        (
            "outside the prefix",
            udp.out6("2001:db8:2::1".parse().unwrap()).frame(),
        ),
        (
            "non-global under the well-known prefix",
            udp.out6(w(Ipv4Addr::new(10, 1, 1, 1))).frame(),
        ),
    ];
    for (what, frame) in &cases {
        check_stateless(&n, &gw, Prog::InsideXdp, what, frame, Want::Untouched, &[]);
    }
    let known = udp.out6(w(R)).frame();
    gw.ns.in_ns(|| {
        Loaded::new(&mut n.ebpf)
            .xdp_targets()
            .unwrap()
            .remove(ext0)
            .expect("XDP_TARGETS")
    });
    check_stateless(
        &n,
        &gw,
        Prog::InsideXdp,
        "ext0 not in XDP_TARGETS",
        &known,
        Want::Untouched,
        &[],
    );
    gw.ns.in_ns(|| n.add_xdp_target(ext0));
    n.set_fast_path(false);
    check_stateless(
        &n,
        &gw,
        Prog::InsideXdp,
        "fast path off",
        &known,
        Want::Untouched,
        &[],
    );
}
