//! The flows the benchmark translates: the bulk bindings that fill the
//! tables, the two "cycle" flows the repeated runs use, and their frames
//! (64 bytes of packet data each: Ethernet + IPv4 + UDP/TCP + payload).
//!
//! # Why cycle flows
//!
//! BPF_PROG_TEST_RUN with `repeat = n` runs the program n times on the
//! *same* buffer: the kernel does not restore the input between runs, so
//! after the first run a translation program sees its own output. A cycle
//! flow makes that output another established flow whose translation is
//! the original frame again:
//!
//! ```text
//! ingress: dst P:pp --NAPT_IN[P:pp]=I:ip--> dst I:ip --NAPT_IN[I:ip]=P:pp--> dst P:pp ...
//! egress:  src I:ip --NAPT_OUT[I:ip]=P:pp--> src P:pp --NAPT_OUT[P:pp]=I:ip--> src I:ip ...
//! ```
//!
//! Both halves of the cycle are complete established bindings as the data
//! plane makes them (layout 4: the `NAPT_OUT` entry holding its first
//! session, with the remote endpoint, and the `NAPT_IN` entry; nothing in
//! `SESSIONS` or `FILTER`, which only hold sessions and remote addresses
//! beyond a mapping's first), and for egress `P` is an inside address too,
//! so every iteration does exactly the work of one packet of an
//! established flow: static-table miss, CONFIG, the mapping lookups, the
//! session match and update (the first session, in the mapping), and a
//! full address + port rewrite with incremental checksum updates. The
//! counters prove it: after a run of n, `ingress_translated` (or
//! `egress_translated`) grew by exactly n and no session or mapping was
//! created.

use std::net::Ipv4Addr;

use anyhow::{Result, ensure};
use nat_userspace::tables::LoadedRef;
pub use xnat_tests::bindings::{Ep, Flow, TCP, UDP, bulk};
use xnat_tests::{
    bindings::Entries,
    frame::{Packet, Tcp, Udp},
};

use super::instance::{Instance, be};

/// Frame size passed to BPF_PROG_TEST_RUN.
pub const FRAME_LEN: usize = 64;

/// The established UDP flow of the repeated runs.
pub const CYCLE_UDP: Flow = Flow {
    proto: UDP,
    inside: Ep::new(Ipv4Addr::new(10, 0, 0, 2), 5000),
    public: Ep::new(Ipv4Addr::new(198, 18, 1, 1), 61000),
    remote: Ep::new(Ipv4Addr::new(198, 19, 255, 1), 53),
};

/// The established TCP flow of the repeated runs.
pub const CYCLE_TCP: Flow = Flow {
    proto: TCP,
    inside: Ep::new(Ipv4Addr::new(10, 0, 0, 3), 5001),
    public: Ep::new(Ipv4Addr::new(198, 18, 1, 2), 61001),
    remote: Ep::new(Ipv4Addr::new(198, 19, 255, 2), 443),
};

/// Entries the cycle flows add on top of the bulk bindings (per mapping
/// table).
pub const CYCLE_ENTRIES: u32 = 4;

/// Writes `e` into the instance's mapping tables.
fn write(inst: &Instance, e: &Entries) -> Result<()> {
    inst.update_batch(LoadedRef::napt_out, &e.out.0, &e.out.1)?;
    inst.update_batch(LoadedRef::napt_in, &e.inb.0, &e.inb.1)
}

/// Writes bulk bindings `0..n` (2 map entries each), stamped `now`.
pub fn fill_bulk(inst: &mut Instance, n: u32, now: u64) -> Result<()> {
    ensure!(
        n <= 64 * (65535 - 1024),
        "{n} bindings do not fit the bulk layout"
    );
    let entries = Entries::bulk(n, now);
    write(inst, &entries)?;
    // The minimal NAT holds the same bindings: its random-flow figures are
    // what the memory system alone costs at each scale.
    inst.baseline_bulk(&entries)?;
    // The per-host port counts the data plane keeps with
    // --max-ports-per-host on (64 bindings per bulk host), so the memory
    // figures include them.
    let hosts: Vec<u32> = (0..n.div_ceil(64))
        .map(|h| be(bulk(h * 64).inside.addr))
        .collect();
    let counts: Vec<u64> = (0..hosts.len() as u32)
        .map(|h| (n - h * 64).min(64) as u64)
        .collect();
    inst.update_batch(LoadedRef::host_ports, &hosts, &counts)
}

/// Installs a cycle flow (see the module docs): the flow itself and its
/// mirror image, whose inside endpoint is the flow's public one.
pub fn install_cycle(inst: &mut Instance, f: &Flow, now: u64) -> Result<()> {
    let mirror = Flow {
        proto: f.proto,
        inside: f.public,
        public: f.inside,
        remote: f.remote,
    };
    let mut e = Entries::with_capacity(2);
    e.push(f, now);
    e.push(&mirror, now);
    write(inst, &e)?;
    // The minimal NAT gets the same cycle.
    for g in [f, &mirror] {
        inst.baseline_flow(
            g.proto,
            (g.inside.addr, g.inside.port),
            (g.public.addr, g.public.port),
        )?;
    }
    // The mirror's inside address must be an inside address for egress.
    inst.add_internal(f.public.addr, 32)
}

fn udp_frame(src: Ep, dst: Ep) -> Vec<u8> {
    // 14 + 20 + 8 + 22 = 64 bytes.
    let payload = [0x5a; FRAME_LEN - 42];
    Packet::udp(src.addr, dst.addr, Udp::new(src.port, dst.port, &payload)).frame()
}

fn tcp_frame(src: Ep, dst: Ep) -> Vec<u8> {
    // 14 + 20 + 20 + 10 = 64 bytes; ACK|PSH, as in an established flow.
    let payload = [0x5a; FRAME_LEN - 54];
    Packet::tcp(src.addr, dst.addr, Tcp::data(src.port, dst.port, &payload)).frame()
}

fn frame(proto: u8, src: Ep, dst: Ep) -> Vec<u8> {
    let f = if proto == TCP {
        tcp_frame(src, dst)
    } else {
        udp_frame(src, dst)
    };
    debug_assert_eq!(f.len(), FRAME_LEN);
    f
}

/// Remote -> public endpoint (before inbound translation).
pub fn inbound_frame(f: &Flow) -> Vec<u8> {
    frame(f.proto, f.remote, f.public)
}

/// Inside -> remote endpoint (before outbound translation).
pub fn outbound_frame(f: &Flow) -> Vec<u8> {
    frame(f.proto, f.inside, f.remote)
}

/// A UDP frame from `src` to `dst`.
pub fn udp(src: Ep, dst: Ep) -> Vec<u8> {
    frame(UDP, src, dst)
}

/// Destination address and port of a frame built here.
pub fn dst_of(frame: &[u8]) -> Ep {
    Ep::new(
        Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]),
        u16::from_be_bytes([frame[36], frame[37]]),
    )
}

/// Source address and port of a frame built here.
pub fn src_of(frame: &[u8]) -> Ep {
    Ep::new(
        Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]),
        u16::from_be_bytes([frame[34], frame[35]]),
    )
}
