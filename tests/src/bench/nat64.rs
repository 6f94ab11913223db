//! NAT64's per-packet cost (issue 19): an established NAT64 flow, UDP and
//! TCP, each way through the programs it takes, in the per-packet rounds.
//!
//! * **Inbound** (IPv4 -> IPv6): `xnat_ingress_xdp` / `xnat_ingress_tc` on
//!   a packet from the remote endpoint to the binding's public endpoint.
//!   NAT44 turns the destination into the IPv6 host's stand-in and
//!   tail-calls `xnat_nat64_in_xdp` / `_tc`, which grows the packet by 20
//!   bytes and writes the IPv6 header (from the remote under the NAT64
//!   prefix to the host): verdict pass, to the stack.
//! * **Outbound** (IPv6 -> IPv4): `xnat_inside_tc` on an IPv6 frame of
//!   the flow, as it arrives on an inside interface; it tail-calls
//!   `xnat_nat64_out_tc` (RFC 7915 to the stand-in, the packet 20 bytes
//!   shorter), which tail-calls `xnat_nat64_out_nat44_tc` (NAPT, then the
//!   FIB lookup and the redirect to the external interface).
//!
//! Each packet changes protocol and size, so a `repeat` run would feed the
//! program its own output from the second iteration on (the kernel runs
//! it again on the same skb or XDP buffer: BPF_PROG_TEST_RUN restores
//! nothing between iterations), and no cycle flow can make an IPv6 packet
//! out of an IPv6 packet: these cases run as `loop`s, one syscall per
//! packet. Beside them, the NAT44 packets of the same hook and protocol
//! run the same way (`loop`), so each NAT64 figure has a like-for-like
//! NAT44 figure of the same rounds.
//!
//! The outbound packet is forwarded by the program itself, so it runs in
//! a network namespace of its own ([`Fib`]) whose FIB routes the remote
//! address out of an `ext0` to a next hop with a permanent neighbour entry,
//! the packet arriving on an inside device `in0`, as on a gateway: the
//! verdict is the redirect, not a drop for want of a route.

use std::{
    fs::File,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd as _,
};

use anyhow::{Context as _, Result, bail, ensure};
use nat_common::{
    csum::checksum,
    nat64::{Nat64Config, WELL_KNOWN_PREFIX, stand_in_probe},
};
use nat_userspace::tables::LoadedRef;
use xnat_tests::{
    bindings::Entries,
    frame::{Packet, Tcp, Udp},
    netns::Netns,
};

use super::{
    flows::{self, Ep, FRAME_LEN, Flow, TCP, UDP},
    instance::{Instance, Prog, TC_ACT_REDIRECT},
};

/// NAT64's prefix in these cases: the well-known one.
pub const PREFIX: ([u8; 16], u8) = (WELL_KNOWN_PREFIX, 96);

/// The IPv6 inside host.
pub const HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 2);

/// The IPv4 server the host reaches at 64:ff9b::5db8:d822: a global
/// address (the well-known prefix carries no other; RFC 6052 3.1).
pub const SERVER: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

/// The next hop of the namespace's default route, and its MAC.
const NEXT_HOP: &str = "192.0.2.2";
const NEXT_HOP_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];

/// An established NAT64 flow: the host's port, and the NAT44 binding of
/// its stand-in.
#[derive(Clone, Copy, Debug)]
pub struct Flow64 {
    pub proto: u8,
    pub host_port: u16,
    pub public: Ep,
    pub remote: Ep,
}

/// The UDP and the TCP flow (public endpoints in the pool, on ports the
/// bulk bindings leave free).
pub const FLOWS: [Flow64; 2] = [
    Flow64 {
        proto: UDP,
        host_port: 5000,
        public: Ep::new(Ipv4Addr::new(198, 18, 0, 10), 61010),
        remote: Ep::new(SERVER, 53),
    },
    Flow64 {
        proto: TCP,
        host_port: 5001,
        public: Ep::new(Ipv4Addr::new(198, 18, 0, 11), 61011),
        remote: Ep::new(SERVER, 443),
    },
];

/// The host's stand-in as the data plane gives it on the host's first
/// packet (the first probe: a free slot), as loaded from a packet.
pub fn stand_in() -> u32 {
    let b = HOST.octets();
    let words: [u32; 4] = std::array::from_fn(|i| {
        u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    });
    stand_in_probe(&words, 0)
}

fn stand_in_addr() -> Ipv4Addr {
    Ipv4Addr::from(stand_in().to_ne_bytes())
}

impl Flow64 {
    /// The NAT44 binding behind it: the stand-in's.
    pub fn nat44(&self) -> Flow {
        Flow {
            proto: self.proto,
            inside: Ep::new(stand_in_addr(), self.host_port),
            public: self.public,
            remote: self.remote,
        }
    }

    /// Remote -> public endpoint, IPv4 (64 bytes).
    pub fn inbound_frame(&self) -> Vec<u8> {
        flows::inbound_frame(&self.nat44())
    }

    /// Host -> the remote under the prefix, IPv6: the IPv4 frame's
    /// transport header and payload (84 bytes, 64 once translated).
    pub fn outbound_frame(&self) -> Vec<u8> {
        let dst = embedded(self.remote.addr);
        let (sp, dp) = (self.host_port, self.remote.port);
        // The segment as the IPv4 frames carry it (its checksum redone).
        let v4 = if self.proto == TCP {
            Packet::tcp(
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                Tcp::data(sp, dp, &[0x5a; FRAME_LEN - 54]),
            )
        } else {
            Packet::udp(
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                Udp::new(sp, dp, &[0x5a; FRAME_LEN - 42]),
            )
        };
        let mut seg = v4.l4_bytes();
        let at = if self.proto == TCP { 16 } else { 6 };
        seg[at..at + 2].fill(0);
        let mut c = l6_checksum(&HOST.octets(), &dst.octets(), self.proto, &seg);
        if c == 0 && self.proto == UDP {
            c = 0xffff;
        }
        seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
        let mut f = flows::inbound_frame(&self.nat44())[..14].to_vec();
        f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        f.extend_from_slice(&[self.proto, 64]);
        f.extend_from_slice(&HOST.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&seg);
        f
    }
}

/// `v4` under the prefix (RFC 6052).
pub fn embedded(v4: Ipv4Addr) -> Ipv6Addr {
    let cfg = Nat64Config::new(PREFIX.0, PREFIX.1).expect("the well-known prefix");
    Ipv6Addr::from(cfg.embed(v4.octets()))
}

/// The TCP/UDP checksum over the IPv6 pseudo-header and `seg` (checksum
/// field zero).
fn l6_checksum(src: &[u8; 16], dst: &[u8; 16], proto: u8, seg: &[u8]) -> u16 {
    let mut b = Vec::with_capacity(40 + seg.len());
    b.extend_from_slice(src);
    b.extend_from_slice(dst);
    b.extend_from_slice(&(seg.len() as u32).to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, proto]);
    b.extend_from_slice(seg);
    checksum(&b)
}

/// NAT64 on in `inst` (programs in their arrays, the prefix), the host's
/// stand-in, and the NAT44 binding of each of [`FLOWS`] as the data plane
/// makes one (a mapping holding its first session, and its NAPT_IN
/// entry), stamped `now`.
pub fn install(inst: &mut Instance, now: u64) -> Result<()> {
    inst.enable_nat64(PREFIX.0, PREFIX.1)?;
    inst.nat64_host(HOST.octets(), stand_in(), now)?;
    let mut e = Entries::with_capacity(FLOWS.len());
    for f in &FLOWS {
        e.push(&f.nat44(), now);
    }
    inst.update_batch(LoadedRef::napt_out, &e.out.0, &e.out.1)?;
    inst.update_batch(LoadedRef::napt_in, &e.inb.0, &e.inb.1)
}

/// A network namespace whose FIB forwards to the servers: `in0` (where
/// the IPv6 hosts' packets arrive), `ext0` 192.0.2.1/24 with the default
/// route via 192.0.2.2 (a permanent neighbour), IPv4 forwarding on. The
/// outbound cases run their syscalls in it ([`Fib::enter`]).
pub struct Fib {
    ns: Netns,
    file: File,
    pub in0: u32,
    pub ext0: u32,
}

impl Fib {
    pub fn new() -> Result<Fib> {
        let ns = Netns::create(format!("xb-nat64-{}", std::process::id()));
        for dev in ["in0", "ext0"] {
            let peer = format!("{dev}p");
            ns.ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer]);
            ns.ip(&["link", "set", &peer, "up"]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "ext0"]);
        ns.ip(&["route", "add", "default", "via", NEXT_HOP, "dev", "ext0"]);
        let mac = NEXT_HOP_MAC
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        ns.ip(&[
            "neigh",
            "replace",
            NEXT_HOP,
            "lladdr",
            &mac,
            "dev",
            "ext0",
            "nud",
            "permanent",
        ]);
        // After the devices: it switches forwarding on for each of them.
        ns.sysctl("net.ipv4.ip_forward", "1");
        let idx = |dev: &str| -> Result<u32> {
            let out = ns.ip(&["-o", "link", "show", "dev", dev]);
            out.split(':')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .with_context(|| format!("no ifindex in {out:?}"))
        };
        let (in0, ext0) = (idx("in0")?, idx("ext0")?);
        let file =
            File::open(ns.path()).with_context(|| format!("opening {}", ns.path().display()))?;
        Ok(Fib {
            ns,
            file,
            in0,
            ext0,
        })
    }

    /// Moves the calling thread into the namespace until the guard drops.
    pub fn enter(&self) -> Result<Entered> {
        let home = File::open("/proc/thread-self/ns/net").context("opening this thread's netns")?;
        setns(&self.file).with_context(|| format!("entering {}", self.ns.name()))?;
        Ok(Entered { home })
    }
}

/// The calling thread is in a [`Fib`]'s namespace; back home on drop.
pub struct Entered {
    home: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.home) {
            // Every later syscall would run in the wrong namespace.
            eprintln!("xnat-bench: could not return to the original netns: {e}");
            std::process::abort();
        }
    }
}

fn setns(ns: &File) -> std::io::Result<()> {
    // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Checks once that a packet of `f` leaves `prog` inbound as the IPv6
/// packet it should be: from the remote under the prefix to the host's
/// port, its transport checksum right, verdict pass.
pub fn check_inbound(inst: &Instance, prog: Prog, f: &Flow64) -> Result<()> {
    let what = format!("NAT64 inbound {} ({})", proto_name(f.proto), prog.name());
    let mut out = vec![0u8; 256];
    let res = inst.test_run(prog, &f.inbound_frame(), Some(&mut out), 1)?;
    let o = &out[..res.data_size_out as usize];
    ensure!(
        res.return_value == prog.pass(),
        "{what}: verdict {} (expected pass)",
        res.return_value
    );
    ensure!(
        o.len() == FRAME_LEN + 20 && be16(o, 12) == 0x86dd && o[14] >> 4 == 6,
        "{what}: a {}-byte frame of type {:#06x} came out, not an {}-byte IPv6 one",
        o.len(),
        be16(o, 12),
        FRAME_LEN + 20
    );
    let src: [u8; 16] = o[22..38].try_into().expect("16 bytes");
    let dst: [u8; 16] = o[38..54].try_into().expect("16 bytes");
    let l4 = &o[54..];
    let (sport, dport) = (be16(l4, 0), be16(l4, 2));
    ensure!(
        Ipv6Addr::from(src) == embedded(f.remote.addr)
            && Ipv6Addr::from(dst) == HOST
            && o[20] == f.proto
            && usize::from(be16(o, 18)) == l4.len()
            && (sport, dport) == (f.remote.port, f.host_port),
        "{what}: became [{}]:{sport} -> [{}]:{dport} (next header {}), expected [{}]:{} -> [{HOST}]:{}",
        Ipv6Addr::from(src),
        Ipv6Addr::from(dst),
        o[20],
        embedded(f.remote.addr),
        f.remote.port,
        f.host_port
    );
    ensure!(
        l6_checksum(&src, &dst, f.proto, l4) == 0,
        "{what}: the {} checksum is wrong after translation",
        proto_name(f.proto)
    );
    Ok(())
}

/// Checks once, inside `fib`, that the host's IPv6 packet of `f` leaves
/// `xnat_inside_tc` as the IPv4 packet from the public endpoint to the
/// remote, its checksums right, redirected to ext0's next hop.
pub fn check_outbound(inst: &Instance, fib: &Fib, f: &Flow64) -> Result<()> {
    let what = format!("NAT64 outbound {} (xnat_inside_tc)", proto_name(f.proto));
    let mut out = vec![0u8; 256];
    let res = {
        let _in = fib.enter()?;
        inst.test_run_on(
            Prog::InsideTc,
            &f.outbound_frame(),
            Some(fib.in0),
            Some(&mut out),
            1,
        )?
    };
    let o = &out[..res.data_size_out as usize];
    if res.return_value != TC_ACT_REDIRECT {
        bail!(
            "{what}: verdict {} (expected the redirect, {TC_ACT_REDIRECT}); counters: {}",
            res.return_value,
            nonzero_counters(inst)?
        );
    }
    ensure!(
        o.len() == FRAME_LEN && be16(o, 12) == 0x0800,
        "{what}: a {}-byte frame of type {:#06x} came out, not a {FRAME_LEN}-byte IPv4 one",
        o.len(),
        be16(o, 12)
    );
    xnat_tests::frame::check_checksums(o).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    let (src, dst) = (flows::src_of(o), flows::dst_of(o));
    ensure!(
        (src.addr, src.port, dst.addr, dst.port)
            == (f.public.addr, f.public.port, f.remote.addr, f.remote.port)
            && o[23] == f.proto
            && o[..6] == NEXT_HOP_MAC,
        "{what}: became {}:{} -> {}:{} (protocol {}, to MAC {:02x?}), expected {}:{} -> {}:{} to the next hop",
        src.addr,
        src.port,
        dst.addr,
        dst.port,
        o[23],
        &o[..6],
        f.public.addr,
        f.public.port,
        f.remote.addr,
        f.remote.port
    );
    Ok(())
}

/// Checks once, inside `fib`, that a packet of the NAT44 flow `f` from
/// an inside host leaves `xnat_inside_tc` of an instance with the fast
/// path on translated (from its public endpoint) and redirected to ext0's
/// next hop.
pub fn check_fast_path(inst: &Instance, fib: &Fib, f: &Flow) -> Result<()> {
    let what = format!("NAT44 fast path {} (xnat_inside_tc)", proto_name(f.proto));
    let mut out = vec![0u8; 256];
    let res = {
        let _in = fib.enter()?;
        inst.test_run_on(
            Prog::InsideTc,
            &flows::outbound_frame(f),
            Some(fib.in0),
            Some(&mut out),
            1,
        )?
    };
    let o = &out[..res.data_size_out as usize];
    if res.return_value != TC_ACT_REDIRECT {
        bail!(
            "{what}: verdict {} (expected the redirect, {TC_ACT_REDIRECT}); counters: {}",
            res.return_value,
            nonzero_counters(inst)?
        );
    }
    let src = flows::src_of(o);
    ensure!(
        (src.addr, src.port) == (f.public.addr, f.public.port) && o[..6] == NEXT_HOP_MAC,
        "{what}: left from {}:{} to MAC {:02x?}, expected {}:{} to the next hop",
        src.addr,
        src.port,
        &o[..6],
        f.public.addr,
        f.public.port
    );
    xnat_tests::frame::check_checksums(o).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

fn nonzero_counters(inst: &Instance) -> Result<String> {
    let c = inst.counters()?;
    Ok(nat_common::Counter::ALL
        .iter()
        .filter(|k| c[**k as usize] != 0)
        .map(|k| format!("{k:?} {}", c[*k as usize]))
        .collect::<Vec<_>>()
        .join(", "))
}

pub fn proto_name(p: u8) -> &'static str {
    if p == TCP { "TCP" } else { "UDP" }
}
