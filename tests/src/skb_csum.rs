//! Running the TC programs on skbs in the checksum states a plain
//! `BPF_PROG_TEST_RUN` does not give them.
//!
//! What the kernel's skb test run (`bpf_prog_test_run_skb`, net/bpf/
//! test_run.c, 6.18) can express, and what it cannot:
//!
//! * It builds a fresh linear skb from `data_in` with `ip_summed ==
//!   CHECKSUM_NONE`. The `struct __sk_buff` context (`ctx_in`) it accepts
//!   is checked by `convert___skb_to_skb`: every byte must be zero except
//!   `mark`, `priority`, `ingress_ifindex`, `ifindex`, `cb`, `tstamp`,
//!   `wire_len`, `gso_segs`, `gso_size` and `hwtstamp` (anything else is
//!   EINVAL). `struct __sk_buff` has no `ip_summed`, `csum_start` or
//!   `csum_offset` field at all, so no context makes a CHECKSUM_PARTIAL skb.
//! * The only checksum flag is `BPF_F_TEST_SKB_CHECKSUM_COMPLETE` (since
//!   6.11): the skb gets `ip_summed == CHECKSUM_COMPLETE` with `skb->csum`
//!   the sum of the packet from its network header on, and after the run
//!   the kernel recomputes that sum and fails the run with EBADMSG if the
//!   program left `skb->csum` disagreeing with the bytes. [`run_complete`]
//!   runs a program that way: a TC program that rewrites addresses without
//!   telling the kernel (`bpf_l4_csum_replace` with `BPF_F_PSEUDO_HDR` does)
//!   is caught there. Real NICs hand TC ingress such skbs.
//! * No helper a program may call turns an skb into a CHECKSUM_PARTIAL one
//!   either (`bpf_csum_level` only moves between NONE and UNNECESSARY).
//!
//! So CHECKSUM_PARTIAL skbs come from elsewhere: [`PartialLane`] gives the
//! kernel the frame through an `AF_PACKET` socket with `PACKET_VNET_HDR`
//! and a virtio-net header asking for checksum offload
//! (`VIRTIO_NET_HDR_F_NEEDS_CSUM`, `csum_start`, `csum_offset`), which is
//! how tap, virtio and packet-socket drivers make partial skbs
//! (`virtio_net_hdr_to_skb` → `skb_partial_csum_set`). The skb is sent out
//! of one end of a veth pair whose TCX egress hook runs the program under
//! test (the very program a test run uses, with the same maps); a second
//! packet socket on that end (a tap, which sees what leaves after TC
//! egress, before the device's transmit) reads the frame the program
//! left, and its own virtio-net header says whether the skb is still
//! partial and where the checksum starts. A frame at the tap is a
//! `TC_ACT_OK`; none is a `TC_ACT_SHOT`, which also makes the send fail
//! with ENOBUFS. Everything up to the tap happens in the `sendmsg` call (a
//! veth has no queue), so the run is as synchronous as a test run. (This
//! VM's kernel has no dummy devices; a veth does as well.)
//!
//! The egress program runs on its real hook there. The ingress program
//! runs on a veth's *egress* hook too: a process cannot hand TC ingress a
//! partial skb synchronously (a veth delivers to its peer through the
//! per-CPU backlog, so the program would run at some later softirq, and a
//! drop would show only as a frame that never comes). The program's code does not depend on the
//! hook it runs on (with the fast path off), and the checksum helpers
//! depend only on the skb's checksum state, so the bytes it leaves are
//! the ones it would leave at TC ingress.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType, tc::TcAttachOptions};

use crate::bpf::{Outcome, TC_ACT_OK, TC_ACT_SHOT};

/// `BPF_F_TEST_SKB_CHECKSUM_COMPLETE` (uapi/linux/bpf.h, 6.11).
pub const BPF_F_TEST_SKB_CHECKSUM_COMPLETE: u32 = 1 << 2;
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// The `test` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// What a CHECKSUM_COMPLETE test run gave.
#[derive(Clone, Debug)]
pub enum Complete {
    /// The run went through: `skb->csum` still matched the packet.
    Ran(Outcome),
    /// EBADMSG: after the program, `skb->csum` no longer matched the
    /// packet's bytes (the output is not returned then).
    CsumStale,
}

/// Runs the TC program `prog` once on `frame` as a CHECKSUM_COMPLETE skb
/// (`out_room` bytes for the output).
pub fn run_complete(prog: BorrowedFd<'_>, frame: &[u8], out_room: usize) -> Result<Complete> {
    let mut out = vec![0u8; out_room];
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        flags: BPF_F_TEST_SKB_CHECKSUM_COMPLETE,
        ..Default::default()
    };
    // The kernel copies at most sizeof(union bpf_attr) and checks that
    // the bytes past what it knows are zero; TestAttr is the whole `test`
    // member.
    // SAFETY: a valid, initialised attribute of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            size_of::<TestAttr>() as u32,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EBADMSG) {
            return Ok(Complete::CsumStale);
        }
        return Err(e).context("BPF_PROG_TEST_RUN with BPF_F_TEST_SKB_CHECKSUM_COMPLETE");
    }
    out.truncate(attr.data_size_out as usize);
    Ok(Complete::Ran(Outcome {
        verdict: attr.retval,
        data: out,
    }))
}

/// `struct virtio_net_hdr` (little-endian on a packet socket).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct VnetHdr {
    flags: u8,
    gso_type: u8,
    hdr_len: u16,
    gso_size: u16,
    csum_start: u16,
    csum_offset: u16,
}

const VNET_HDR_LEN: usize = size_of::<VnetHdr>();
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
/// `sll_pkttype` of a frame the device sends (linux/if_packet.h).
const PACKET_OUTGOING: u8 = 4;

/// Where a partial skb's checksum is to be completed: `start` counted from
/// the Ethernet header, `offset` of the checksum field from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialCsum {
    pub start: u16,
    pub offset: u16,
}

/// What a program did with a partial skb.
#[derive(Clone, Debug)]
pub struct PartialOutcome {
    /// `TC_ACT_OK` or `TC_ACT_SHOT`, read off the send.
    pub verdict: u32,
    /// The frame as it left (the input, unread, if dropped).
    pub data: Vec<u8>,
    /// The skb's checksum state as it left: still partial, and where.
    pub partial: Option<PartialCsum>,
}

/// One veth end with a program at its TCX egress, a socket to send
/// partial skbs out of it and a tap to read them back.
struct Dev {
    name: String,
    ifindex: i32,
    tx: OwnedFd,
    tap: OwnedFd,
}

/// Partial skbs through TC programs (see the module comment). Create it
/// inside a scratch network namespace: it makes veth pairs.
pub struct PartialLane {
    tag: String,
    /// Devices made, deleted on drop.
    made: Vec<String>,
    devs: Vec<Dev>,
}

fn ip_cmd(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn ifindex(name: &str) -> Result<i32> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: a valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("no device {name}"));
    }
    Ok(i as i32)
}

fn write_sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).with_context(|| format!("writing {path}"))
}

fn packet_socket(protocol: u16) -> Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(protocol.to_be()),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("socket(AF_PACKET)");
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    setsockopt(fd.as_raw_fd(), libc::PACKET_VNET_HDR, &on)?;
    Ok(fd)
}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, v: &T) -> Result<()> {
    // SAFETY: `v` is a valid T of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            opt,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context(format!("setsockopt(SOL_PACKET, {opt})"));
    }
    Ok(())
}

fn sockaddr(ifindex: i32, protocol: u16) -> libc::sockaddr_ll {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut a: libc::sockaddr_ll = unsafe { zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = protocol.to_be();
    a.sll_ifindex = ifindex;
    a
}

fn bind(fd: RawFd, ifindex: i32, protocol: u16) -> Result<()> {
    let a = sockaddr(ifindex, protocol);
    // SAFETY: a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd,
            (&a as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("bind(AF_PACKET)");
    }
    Ok(())
}

/// One frame leaving the device (`PACKET_OUTGOING`) from the tap `fd`,
/// without waiting, with its virtio-net header; frames coming in are
/// skipped (there should be none: the peer has no address).
fn recv_now(fd: RawFd) -> Result<Option<(VnetHdr, Vec<u8>)>> {
    loop {
        let mut buf = vec![0u8; 65536 + VNET_HDR_LEN];
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut from: libc::sockaddr_ll = unsafe { zeroed() };
        let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: valid buffers of the sizes passed.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(e).context("recv on the tap");
        }
        if from.sll_pkttype != PACKET_OUTGOING {
            continue;
        }
        let n = n as usize;
        if n < VNET_HDR_LEN || n > buf.len() {
            bail!("tap returned {n} bytes");
        }
        // SAFETY: VnetHdr is plain integers; the buffer holds at least its
        // size.
        let hdr: VnetHdr = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
        buf.truncate(n);
        return Ok(Some((hdr, buf.split_off(VNET_HDR_LEN))));
    }
}

impl PartialLane {
    /// A lane without devices yet; [`PartialLane::add`] makes them,
    /// named `tag` and a number. Must run in a network namespace of the
    /// caller's own (it creates devices).
    pub fn new(tag: &str) -> PartialLane {
        PartialLane {
            tag: tag.to_string(),
            made: Vec::new(),
            devs: Vec::new(),
        }
    }

    /// A veth pair with `prog` attached to the TCX egress of one end;
    /// returns its number for [`PartialLane::run`]. IPv6 is off on both
    /// ends and they have no address, so the kernel sends nothing of its
    /// own through them (router solicitations, MLD, ARP); frames reaching
    /// the peer are for another host's MAC address and die there.
    pub fn add(&mut self, prog: &mut SchedClassifier) -> Result<usize> {
        let name = format!("{}{}", self.tag, self.made.len());
        let peer = format!("{name}p");
        ip_cmd(&["link", "add", &name, "type", "veth", "peer", "name", &peer])?;
        self.made.push(name.clone());
        for dev in [&name, &peer] {
            write_sysctl(&format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"), "1")?;
            // Room for a full-MTU frame with options and padding; the peer
            // up too, or the device has no carrier and its qdisc drops
            // everything.
            ip_cmd(&["link", "set", dev, "mtu", "9000", "up"])?;
        }
        prog.attach_with_options(
            &name,
            TcAttachType::Egress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .with_context(|| format!("attaching at TCX egress of {name}"))?;
        let ifindex = ifindex(&name)?;
        // The tap: everything leaving the device.
        let tap = packet_socket(libc::ETH_P_ALL as u16)?;
        bind(tap.as_raw_fd(), ifindex, libc::ETH_P_ALL as u16)?;
        // The sender: protocol 0, so it receives nothing itself.
        let tx = packet_socket(0)?;
        bind(tx.as_raw_fd(), ifindex, 0)?;
        while recv_now(tap.as_raw_fd())?.is_some() {}
        self.devs.push(Dev {
            name,
            ifindex,
            tx,
            tap,
        });
        Ok(self.devs.len() - 1)
    }

    /// Sends `frame` as a partial skb (checksum to be completed from
    /// `csum.start`, field at `csum.start + csum.offset`) out of device
    /// `which`, through its program. `linear`: how many bytes the skb's
    /// linear part holds at least (the rest in page fragments; the kernel
    /// pulls the headers up to the checksum field in any case).
    pub fn run(
        &self,
        which: usize,
        frame: &[u8],
        csum: PartialCsum,
        linear: u16,
    ) -> Result<PartialOutcome> {
        let dev = &self.devs[which];
        // Anything stray (there should be nothing) must not pass for the
        // program's output.
        if let Some((_, f)) = recv_now(dev.tap.as_raw_fd())? {
            bail!(
                "{}: an unexpected frame of {} bytes left the device",
                dev.name,
                f.len()
            );
        }
        let hdr = VnetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: 0,
            hdr_len: linear.to_le(),
            gso_size: 0,
            csum_start: csum.start.to_le(),
            csum_offset: csum.offset.to_le(),
        };
        let mut msg = Vec::with_capacity(VNET_HDR_LEN + frame.len());
        // SAFETY: VnetHdr is plain integers without padding.
        msg.extend_from_slice(unsafe {
            std::slice::from_raw_parts((&hdr as *const VnetHdr).cast::<u8>(), VNET_HDR_LEN)
        });
        msg.extend_from_slice(frame);
        let to = sockaddr(dev.ifindex, 0);
        // SAFETY: valid buffers of the sizes passed.
        let n = unsafe {
            libc::sendto(
                dev.tx.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        let sent = if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        };
        // The tap saw it leave, after TC egress: the program passed it.
        // (The veth may still drop it afterwards, its peer's backlog full:
        // the send then fails too.)
        if let Some((h, data)) = recv_now(dev.tap.as_raw_fd())? {
            let partial = (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0).then(|| PartialCsum {
                start: u16::from_le(h.csum_start),
                offset: u16::from_le(h.csum_offset),
            });
            return Ok(PartialOutcome {
                verdict: TC_ACT_OK,
                data,
                partial,
            });
        }
        match sent {
            // TC_ACT_SHOT at egress: __dev_queue_xmit returns
            // NET_XMIT_DROP, which the socket reports as ENOBUFS.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(PartialOutcome {
                verdict: TC_ACT_SHOT,
                data: frame.to_vec(),
                partial: None,
            }),
            Err(e) => Err(e).with_context(|| format!("sending a partial skb out of {}", dev.name)),
            Ok(()) => bail!(
                "{}: the send went through but nothing left the device",
                dev.name
            ),
        }
    }
}

impl Drop for PartialLane {
    fn drop(&mut self) {
        self.devs.clear();
        for name in &self.made {
            if let Err(e) = ip_cmd(&["link", "del", name]) {
                eprintln!("warning: {e:#}");
            }
        }
    }
}

/// The TCP or UDP checksum of an Ethernet + IPv4 frame that a local stack
/// would hand over as CHECKSUM_PARTIAL: not a fragment, no options past
/// the frame, the segment running to the frame's end (no padding, no
/// total length that lies). `None` for anything else.
pub fn partial_csum_of(frame: &[u8]) -> Option<PartialCsum> {
    use crate::frame::ETH_HLEN;
    if frame.len() < ETH_HLEN + 20 || frame[12..14] != [0x08, 0x00] || frame[ETH_HLEN] >> 4 != 4 {
        return None;
    }
    let ip = &frame[ETH_HLEN..];
    let hlen = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    let offset = match ip[9] {
        6 => 16,
        17 => 6,
        _ => return None,
    };
    let l4_min = if ip[9] == 6 { 20 } else { 8 };
    if hlen < 20 || total != ip.len() || frag != 0 || total < hlen + l4_min {
        return None;
    }
    Some(PartialCsum {
        start: (ETH_HLEN + hlen) as u16,
        offset,
    })
}

/// The sum a partial TCP/UDP checksum field holds: the pseudo-header's
/// (addresses, protocol, and the length of what the checksum will cover,
/// from `csum.start` to the end of the frame), folded, not complemented
/// (`~csum_tcpudp_magic(saddr, daddr, len, proto, 0)` in the kernel).
pub fn pseudo_header_sum(frame: &[u8], csum: PartialCsum) -> u16 {
    use crate::frame::ETH_HLEN;
    use crate::model::csum::{fold, sum};
    let ip = &frame[ETH_HLEN..];
    let len = frame.len() - usize::from(csum.start);
    fold(u64::from(sum(&ip[12..16])) + u64::from(sum(&ip[16..20])) + u64::from(ip[9]) + len as u64)
}

/// `frame` (a valid TCP/UDP frame, see [`partial_csum_of`]) as a local
/// stack hands it to the device with checksum offload: its checksum field
/// holding [`pseudo_header_sum`].
pub fn make_partial(frame: &[u8]) -> Option<(Vec<u8>, PartialCsum)> {
    let csum = partial_csum_of(frame)?;
    let mut f = frame.to_vec();
    let at = usize::from(csum.start + csum.offset);
    f[at..at + 2].copy_from_slice(&pseudo_header_sum(frame, csum).to_be_bytes());
    Some((f, csum))
}

/// What a device (or `skb_checksum_help`) does with a partial skb: the sum
/// of everything from `csum.start` to the end, the field included as it
/// is, folded and complemented into the field (0 sent as 0xffff).
pub fn complete(frame: &[u8], csum: PartialCsum) -> Vec<u8> {
    let mut f = frame.to_vec();
    let start = usize::from(csum.start);
    let at = start + usize::from(csum.offset);
    if at + 2 > f.len() {
        return f;
    }
    let c = match !crate::model::csum::sum(&f[start..]) {
        0 => 0xffff,
        c => c,
    };
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
    f
}
