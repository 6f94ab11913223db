//! Traffic the end-to-end benchmark makes itself, from threads that enter
//! the namespaces with setns(2): the kernel's XDP traffic generator
//! (BPF_PROG_TEST_RUN in live-frames mode, the headline UDP sender), a
//! 64-byte UDP packet blaster (AF_PACKET, sendmmsg), a loop of short TCP
//! connections with its accepting server, and the XDP sink that receives
//! the UDP tests.

use std::{
    fs::File,
    io,
    mem::{size_of, zeroed},
    net::{Ipv4Addr, SocketAddrV4, SocketAddrV6},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// Moves the calling thread into network namespace `ns` (/run/netns/NAME).
pub fn enter_netns(ns: &str) -> Result<()> {
    let f = File::open(format!("/run/netns/{ns}"))
        .with_context(|| format!("opening /run/netns/{ns}"))?;
    // SAFETY: plain syscall on an fd we own; affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns into {ns}: {}", io::Error::last_os_error());
    }
    Ok(())
}

/// Pins the calling thread to `cpu`.
pub fn pin_to_cpu(cpu: usize) {
    let _ = pin_pid_to_cpu(0, cpu);
}

/// Pins thread `pid` (0: the calling thread) to `cpu`.
pub fn pin_pid_to_cpu(pid: i32, cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid, size_of::<libc::cpu_set_t>(), &set)
    };
    check(rc, "sched_setaffinity").map(drop)
}

fn check(rc: libc::c_int, what: &str) -> Result<libc::c_int> {
    if rc < 0 {
        bail!("{what}: {}", io::Error::last_os_error());
    }
    Ok(rc)
}

fn csum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += word as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The payload of every test datagram: 22 bytes, so that the IPv4 frame is
/// 64 bytes, the least Ethernet carries, and its IPv6 twin 84.
const UDP_PAYLOAD: usize = 22;

/// A UDP header and payload with `src_port`, `dst_port` and a valid
/// checksum over `pseudo` (the pseudo-header's sum, folded or not).
fn udp_datagram(pseudo: u32, src_port: u16, dst_port: u16) -> Vec<u8> {
    let udp_len = 8 + UDP_PAYLOAD;
    let mut udp = vec![0x5a; udp_len];
    udp[0..2].copy_from_slice(&src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    let c = match csum(&udp, pseudo) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    udp
}

/// The sum of `pseudo`'s 16-bit words (a pseudo-header), for [`csum`].
fn word_sum(pseudo: &[u8]) -> u32 {
    pseudo
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum()
}

/// A 64-byte Ethernet/IPv4/UDP frame with valid checksums.
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
) -> Vec<u8> {
    const LEN: usize = 64;
    let udp_len = LEN - 14 - 20;
    let mut f = Vec::with_capacity(LEN);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((LEN - 14) as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let c = csum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.ip().octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&udp_datagram(word_sum(&pseudo), src.port(), dst.port()));
    f
}

/// An 84-byte Ethernet/IPv6/UDP frame with a valid checksum: the IPv6 twin
/// of [`udp_frame`] (the same datagram; a NAT64 turns it into that 64-byte
/// IPv4 frame).
pub fn udp6_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: SocketAddrV6,
    dst: SocketAddrV6,
) -> Vec<u8> {
    let udp_len = 8 + UDP_PAYLOAD;
    let mut f = Vec::with_capacity(14 + 40 + udp_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    ip[6] = 17;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.ip().octets());
    ip[24..40].copy_from_slice(&dst.ip().octets());
    f.extend_from_slice(&ip);
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src.ip().octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&(udp_len as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 17]);
    f.extend_from_slice(&udp_datagram(word_sum(&pseudo), src.port(), dst.port()));
    f
}

/// A sender thread writing `frames` round robin out of `dev` in namespace
/// `ns` as fast as it can (sendmmsg on an AF_PACKET socket bypassing the
/// qdisc, 64 frames per call), pinned to `cpu`, until stopped.
pub struct Blaster {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    handle: Option<JoinHandle<Result<()>>>,
}

impl Blaster {
    pub fn start(ns: &str, dev: &str, frames: Vec<Vec<u8>>, cpu: Option<usize>) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let (ns, dev) = (ns.to_owned(), dev.to_owned());
        let (stop2, sent2, refused2) = (stop.clone(), sent.clone(), refused.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let handle = thread::spawn(move || -> Result<()> {
            let setup = || -> Result<OwnedFd> {
                enter_netns(&ns)?;
                if let Some(cpu) = cpu {
                    pin_to_cpu(cpu);
                }
                packet_socket(&dev)
            };
            let fd = match setup() {
                Ok(fd) => {
                    let _ = ready_tx.send(Ok(()));
                    fd
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            };
            blast(fd.as_raw_fd(), &frames, &stop2, &sent2, &refused2);
            Ok(())
        });
        ready_rx
            .recv()
            .context("the sender thread died during setup")??;
        Ok(Blaster {
            stop,
            sent,
            refused,
            handle: Some(handle),
        })
    }

    /// Frames the device took so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Frames the device refused so far (the receiving CPU's backlog was
    /// full: the gateway is not keeping up).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Blaster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn packet_socket(dev: &str) -> Result<OwnedFd> {
    // Protocol 0: this socket only sends.
    // SAFETY: plain syscalls on the fd we create and own.
    unsafe {
        let fd = check(
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0),
            "socket(AF_PACKET)",
        )?;
        let fd = OwnedFd::from_raw_fd(fd);
        let name = std::ffi::CString::new(dev)?;
        let ifindex = libc::if_nametoindex(name.as_ptr());
        if ifindex == 0 {
            bail!("no interface {dev}");
        }
        let mut sll: libc::sockaddr_ll = zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        check(
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                size_of::<libc::sockaddr_ll>() as u32,
            ),
            "bind(AF_PACKET)",
        )?;
        // Enough buffer that the sender never waits on packets still queued
        // on the receiving side (root may exceed wmem_max).
        let buf: libc::c_int = 16 << 20;
        check(
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                &buf as *const libc::c_int as *const libc::c_void,
                size_of::<libc::c_int>() as u32,
            ),
            "SO_SNDBUFFORCE",
        )?;
        let one: libc::c_int = 1;
        check(
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &one as *const libc::c_int as *const libc::c_void,
                size_of::<libc::c_int>() as u32,
            ),
            "PACKET_QDISC_BYPASS",
        )?;
        Ok(fd)
    }
}

fn blast(fd: RawFd, frames: &[Vec<u8>], stop: &AtomicBool, sent: &AtomicU64, refused: &AtomicU64) {
    const BATCH: usize = 64;
    let mut iovs: Vec<libc::iovec> = (0..BATCH)
        .map(|i| {
            let f = &frames[i % frames.len()];
            libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            }
        })
        .collect();
    // SAFETY: mmsghdr is plain data; every msg_iov points into `iovs`,
    // which outlives the sendmmsg calls, and the iovecs into `frames`.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|_| unsafe { zeroed::<libc::mmsghdr>() })
        .collect();
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: see above.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, 0) };
        // A short count means the next frame failed; it is reported by the
        // next call (ENOBUFS: the veth peer's backlog was full). Either way,
        // go on offering.
        if n > 0 {
            sent.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Accepts and closes connections on `addr` in namespace `ns` until
/// dropped: the far end of the new-flows loop. The listening socket has a
/// deep backlog: a full accept queue drops SYNs, and the client would wait
/// a 1 s retransmission. Closing an accepted socket sends a FIN, which the
/// client's reset answers (no TIME_WAIT on either side); a reset from the
/// server instead could overtake its own SYN-ACK through the gateway and
/// fail the client's connect().
pub struct AcceptServer {
    stop: Arc<AtomicBool>,
    fd: RawFd,
    handle: Option<JoinHandle<()>>,
}

impl AcceptServer {
    pub fn start(ns: &str, addr: SocketAddrV4) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let ns = ns.to_owned();
        let (tx, rx) = std::sync::mpsc::channel::<Result<RawFd>>();
        let handle = thread::spawn(move || {
            let listener = match enter_netns(&ns).and_then(|()| listen(addr)) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(Ok(listener.as_raw_fd()));
            while !stop2.load(Ordering::Relaxed) {
                // SAFETY: accept on our listening socket; the new fd is
                // closed at once.
                let fd = unsafe {
                    libc::accept(
                        listener.as_raw_fd(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
                if fd >= 0 {
                    // SAFETY: we own the accepted fd.
                    unsafe { libc::close(fd) };
                }
            }
        });
        let fd = rx.recv().context("the server thread died during setup")??;
        Ok(AcceptServer {
            stop,
            fd,
            handle: Some(handle),
        })
    }
}

impl Drop for AcceptServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the blocked accept (it fails with EINVAL); the thread
        // closes the socket.
        // SAFETY: the fd stays open until the thread exits.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn set_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
    what: &str,
) -> Result<()> {
    // SAFETY: setsockopt with a pointer to a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &v as *const libc::c_int as *const libc::c_void,
            size_of::<libc::c_int>() as u32,
        )
    };
    check(rc, what).map(drop)
}

fn set_linger0(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a pointer to a live linger struct.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            size_of::<libc::linger>() as u32,
        )
    };
}

/// Binds `fd` to `addr` with SO_REUSEADDR (the runs reuse their ports).
fn bind_reusing(fd: std::os::fd::RawFd, addr: SocketAddrV4) -> Result<()> {
    set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1, "SO_REUSEADDR")?;
    let sa = sockaddr(addr);
    // SAFETY: bind with a valid sockaddr_in of the size given.
    let r = unsafe {
        libc::bind(
            fd,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            size_of::<libc::sockaddr_in>() as u32,
        )
    };
    check(r, "bind")?;
    Ok(())
}

fn listen(addr: SocketAddrV4) -> Result<OwnedFd> {
    // SAFETY: plain syscalls on a socket we create and own.
    unsafe {
        let fd = check(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0), "socket")?;
        let fd = OwnedFd::from_raw_fd(fd);
        bind_reusing(fd.as_raw_fd(), addr).with_context(|| format!("listening on {addr}"))?;
        check(libc::listen(fd.as_raw_fd(), 4096), "listen")?;
        Ok(fd)
    }
}

/// Result of a burst of short connections.
pub struct FlowRun {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Failed connections by error (errno text), most frequent first.
    pub errors: Vec<(String, u64)>,
}

/// Source ports of the new-flows test: below the ephemeral range the
/// kernel hands to other clients (iperf3), whose TIME_WAIT sockets would
/// block a bind.
pub const FLOW_PORT_MIN: u16 = 1024;
pub const FLOW_PORT_MAX: u16 = 32767;

/// For `duration`, one thread per source address in namespace `ns` opens
/// TCP connections to `server` in a loop, closing each at once with a
/// reset (SO_LINGER 0). Every connection is a new flow through the
/// gateway: SYN, SYN-ACK, ACK, RST. Each thread binds its source ports in
/// sequence from its cursor in `ports` (kept across calls), so a 4-tuple
/// is not reused for 64k connections: a reused one can meet the remains
/// of its previous connection at the server or in a NAT, which costs a
/// 1 s SYN retransmission and would measure that instead.
pub fn connect_loop(
    ns: &str,
    sources: &[Ipv4Addr],
    ports: &mut [u16],
    server: SocketAddrV4,
    duration: Duration,
) -> Result<FlowRun> {
    let started = Instant::now();
    let deadline = started + duration;
    type Counts = (u64, u64, std::collections::HashMap<String, u64>);
    let results: Vec<Result<Counts>> = thread::scope(|s| {
        let handles: Vec<_> = sources
            .iter()
            .zip(ports.iter_mut())
            .map(|(&src, port)| {
                s.spawn(move || -> Result<Counts> {
                    enter_netns(ns)?;
                    let (mut ok, mut failed) = (0, 0);
                    let mut errors = std::collections::HashMap::new();
                    while Instant::now() < deadline {
                        *port = if *port >= FLOW_PORT_MAX {
                            FLOW_PORT_MIN
                        } else {
                            *port + 1
                        };
                        match connect_once(SocketAddrV4::new(src, *port), server) {
                            Ok(()) => ok += 1,
                            Err(e) => {
                                failed += 1;
                                *errors.entry(format!("{e:#}")).or_insert(0) += 1;
                            }
                        }
                    }
                    Ok((ok, failed, errors))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("connect thread panicked"))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut run = FlowRun {
        ok: 0,
        failed: 0,
        elapsed,
        errors: Vec::new(),
    };
    let mut errors = std::collections::HashMap::<String, u64>::new();
    for r in results {
        let (ok, failed, e) = r?;
        run.ok += ok;
        run.failed += failed;
        for (k, n) in e {
            *errors.entry(k).or_insert(0) += n;
        }
    }
    run.errors = errors.into_iter().collect();
    run.errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    Ok(run)
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = a.port().to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
    sa
}

fn connect_once(src: SocketAddrV4, server: SocketAddrV4) -> Result<()> {
    // SAFETY: plain syscalls on a socket we create and own.
    unsafe {
        let fd = check(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0), "socket")?;
        let fd = OwnedFd::from_raw_fd(fd);
        // A lost SYN or SYN-ACK would cost a 1 s retransmission: give up
        // after 200 ms and count a failure instead (a handshake takes well
        // under 1 ms here).
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &timeout as *const libc::timeval as *const libc::c_void,
            size_of::<libc::timeval>() as u32,
        );
        set_linger0(fd.as_raw_fd());
        bind_reusing(fd.as_raw_fd(), src)?;
        let remote = sockaddr(server);
        check(
            libc::connect(
                fd.as_raw_fd(),
                &remote as *const libc::sockaddr_in as *const libc::sockaddr,
                size_of::<libc::sockaddr_in>() as u32,
            ),
            "connect",
        )?;
        // Dropping the fd closes it: with SO_LINGER 0 that sends a RST.
        Ok(())
    }
}

/// One BPF instruction.
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    /// `src << 4 | dst`.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// An XDP program that drops IPv4 UDP packets to port `port` (no IP
/// options) and passes everything else: the benchmark's receiver, cheaper
/// than any stack processing. The veth counts its drops
/// (`rx_queue_0_xdp_drops` in `ethtool -S`).
fn udp_sink_insns(port: u16) -> [Insn; 17] {
    const LDXW: u8 = 0x61;
    const LDXH: u8 = 0x69;
    const LDXB: u8 = 0x71;
    const MOV64_X: u8 = 0xbf;
    const MOV64_K: u8 = 0xb7;
    const ADD64_K: u8 = 0x07;
    const JGT_X: u8 = 0x2d;
    const JNE_K: u8 = 0x55;
    const EXIT: u8 = 0x95;
    // Loads are little-endian: network-order fields compare byte-swapped.
    let ethertype_ipv4 = 0x0008;
    let dport = port.swap_bytes() as i32;
    [
        insn(LDXW, 2, 1, 0, 0),     // r2 = ctx->data
        insn(LDXW, 3, 1, 4, 0),     // r3 = ctx->data_end
        insn(MOV64_X, 4, 2, 0, 0),  // r4 = r2
        insn(ADD64_K, 4, 0, 0, 38), // r4 += 38 (up to the UDP destination port)
        insn(JGT_X, 4, 3, 10, 0),   // if r4 > r3 goto pass
        insn(LDXH, 5, 2, 12, 0),    // r5 = ethertype
        insn(JNE_K, 5, 0, 8, ethertype_ipv4),
        insn(LDXB, 5, 2, 14, 0), // r5 = version/IHL
        insn(JNE_K, 5, 0, 6, 0x45),
        insn(LDXB, 5, 2, 23, 0), // r5 = protocol
        insn(JNE_K, 5, 0, 4, 17),
        insn(LDXH, 5, 2, 36, 0), // r5 = UDP destination port
        insn(JNE_K, 5, 0, 2, dport),
        insn(MOV64_K, 0, 0, 0, 1), // XDP_DROP
        insn(EXIT, 0, 0, 0, 0),
        insn(MOV64_K, 0, 0, 0, 2), // pass: XDP_PASS
        insn(EXIT, 0, 0, 0, 0),
    ]
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

/// bpf(2) with a zero-padded `union bpf_attr`; the raw result.
fn sys_bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<libc::c_long> {
    // SAFETY: attr is a zero-padded union bpf_attr for `cmd` whose
    // pointers refer to live buffers.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of_val(attr)) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// bpf(2) for a command that returns a new fd.
fn bpf(cmd: libc::c_long, attr: &mut [u64; 16], what: &str) -> Result<OwnedFd> {
    let fd = sys_bpf(cmd, attr).with_context(|| what.to_owned())?;
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Loads `insns` as an XDP program.
fn load_xdp(insns: &[Insn], what: &str) -> Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = [0u64; 16];
    // prog_type, insn_cnt | insns | license | ... | expected_attach_type at
    // byte 68 (the high half of word 8).
    attr[0] = BPF_PROG_TYPE_XDP as u64 | ((insns.len() as u64) << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    attr[8] = (BPF_XDP as u64) << 32;
    bpf(BPF_PROG_LOAD, &mut attr, what)
}

/// Loads the UDP sink (see [`udp_sink_insns`]).
pub fn load_udp_sink(port: u16) -> Result<OwnedFd> {
    load_xdp(&udp_sink_insns(port), "loading the XDP UDP sink")
}

/// The IPv6 twin of [`udp_sink_insns`]: drops IPv6 UDP packets to `port`
/// (no extension headers) and passes everything else.
fn udp6_sink_insns(port: u16) -> [Insn; 15] {
    const LDXW: u8 = 0x61;
    const LDXH: u8 = 0x69;
    const LDXB: u8 = 0x71;
    const MOV64_X: u8 = 0xbf;
    const MOV64_K: u8 = 0xb7;
    const ADD64_K: u8 = 0x07;
    const JGT_X: u8 = 0x2d;
    const JNE_K: u8 = 0x55;
    const EXIT: u8 = 0x95;
    // Loads are little-endian: network-order fields compare byte-swapped.
    let ethertype_ipv6 = 0xdd86;
    let dport = port.swap_bytes() as i32;
    [
        insn(LDXW, 2, 1, 0, 0),     // r2 = ctx->data
        insn(LDXW, 3, 1, 4, 0),     // r3 = ctx->data_end
        insn(MOV64_X, 4, 2, 0, 0),  // r4 = r2
        insn(ADD64_K, 4, 0, 0, 58), // r4 += 58 (up to the UDP destination port)
        insn(JGT_X, 4, 3, 8, 0),    // if r4 > r3 goto pass
        insn(LDXH, 5, 2, 12, 0),    // r5 = ethertype
        insn(JNE_K, 5, 0, 6, ethertype_ipv6),
        insn(LDXB, 5, 2, 20, 0), // r5 = next header
        insn(JNE_K, 5, 0, 4, 17),
        insn(LDXH, 5, 2, 56, 0), // r5 = UDP destination port
        insn(JNE_K, 5, 0, 2, dport),
        insn(MOV64_K, 0, 0, 0, 1), // XDP_DROP
        insn(EXIT, 0, 0, 0, 0),
        insn(MOV64_K, 0, 0, 0, 2), // pass: XDP_PASS
        insn(EXIT, 0, 0, 0, 0),
    ]
}

/// Loads the IPv6 UDP sink (see [`udp6_sink_insns`]).
pub fn load_udp6_sink(port: u16) -> Result<OwnedFd> {
    load_xdp(&udp6_sink_insns(port), "loading the XDP IPv6 UDP sink")
}

/// Attaches XDP program `prog` to `dev` in namespace `ns` with a BPF link;
/// closing the returned fd detaches it.
pub fn attach_xdp(ns: &str, dev: &str, prog: &OwnedFd) -> Result<OwnedFd> {
    let prog_fd = prog.as_raw_fd();
    let (ns, dev) = (ns.to_owned(), dev.to_owned());
    thread::spawn(move || -> Result<OwnedFd> {
        enter_netns(&ns)?;
        let name = std::ffi::CString::new(dev.as_str())?;
        // SAFETY: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            bail!("no interface {dev} in {ns}");
        }
        let mut attr = [0u64; 16];
        // prog_fd, target_ifindex | attach_type, flags (0: native mode).
        attr[0] = prog_fd as u64 | ((ifindex as u64) << 32);
        attr[1] = BPF_XDP as u64;
        bpf(BPF_LINK_CREATE, &mut attr, "attaching the XDP UDP sink")
    })
    .join()
    .unwrap_or_else(|_| bail!("attach thread panicked"))
}

/// Where the generator's program writes in its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct GenLayout {
    /// The header bytes rewritten on every run: Ethernet (14), IPv4 without
    /// options (20) or IPv6 (40), and UDP (8).
    header: usize,
    /// Offset of the UDP source port.
    sport: usize,
    /// IPv6 only: offset of the UDP checksum and its value (host order)
    /// with the first source port, at least the flow count (see
    /// [`generator_template`]).
    csum: Option<(usize, u16)>,
}

/// The XDP program behind [`XdpGenerator`]: writes `frame`'s header bytes
/// (`layout`) into the packet from immediates, sets a random one of `flows`
/// UDP source ports from `frame`'s on, and returns XDP_TX.
///
/// Why rewrite every time: in live-frames mode the kernel recycles its
/// pages without copying `data_in` again, and the gateway changes packets
/// in place (TTL, NAT addresses, ports and checksums, MACs). Without the
/// rewrite a recycled frame would go out as the gateway left it, its TTL
/// one lower on every round trip until the gateway drops it. In IPv4 the
/// UDP checksum is 0 (none, legal there) so the port can change without
/// fixing it; the IPv4 checksum is the template's, which the rewrite
/// restores. IPv6 has no "no checksum", so there the program fixes it: the
/// port grows by k over the template's, the checksum falls by k (one's
/// complement arithmetic, no carry: the template's checksum is at least
/// the flow count).
fn generator_insns(frame: &[u8], flows: u16, layout: GenLayout) -> Vec<Insn> {
    const LDXW: u8 = 0x61;
    const MOV64_X: u8 = 0xbf;
    const MOV64_K: u8 = 0xb7;
    const ADD64_K: u8 = 0x07;
    const SUB64_X: u8 = 0x1f;
    const AND64_K: u8 = 0x57;
    const JGT_X: u8 = 0x2d;
    const STW: u8 = 0x62;
    const STH: u8 = 0x6a;
    const STXH: u8 = 0x6b;
    const TO_BE: u8 = 0xdc;
    const CALL: u8 = 0x85;
    const EXIT: u8 = 0x95;
    const GET_PRANDOM_U32: i32 = 7;
    const XDP_DROP: i32 = 1;
    const XDP_TX: i32 = 3;
    let header = layout.header;
    let base_port = u16::from_be_bytes([frame[layout.sport], frame[layout.sport + 1]]);
    let word = |o: usize| i32::from_le_bytes([frame[o], frame[o + 1], frame[o + 2], frame[o + 3]]);
    let mut body = Vec::new();
    // Stores are little-endian like the loads: the immediates are the
    // frame's bytes read as such.
    for o in (0..header - 2).step_by(4) {
        body.push(insn(STW, 7, 0, o as i16, word(o)));
    }
    let last = header - 2;
    body.push(insn(
        STH,
        7,
        0,
        last as i16,
        u16::from_le_bytes([frame[last], frame[last + 1]]) as i32,
    ));
    body.extend([
        insn(CALL, 0, 0, 0, GET_PRANDOM_U32), // r0 = random (clobbers r1-r5)
        insn(AND64_K, 0, 0, 0, (flows - 1) as i32), // r0 = k
    ]);
    if layout.csum.is_some() {
        body.push(insn(MOV64_X, 1, 0, 0, 0)); // r1 = k
    }
    body.extend([
        insn(ADD64_K, 0, 0, 0, base_port as i32),
        insn(TO_BE, 0, 0, 0, 16), // r0 = htons(r0)
        insn(STXH, 7, 0, layout.sport as i16, 0),
    ]);
    if let Some((at, base_csum)) = layout.csum {
        body.extend([
            insn(MOV64_K, 2, 0, 0, base_csum as i32),
            insn(SUB64_X, 2, 1, 0, 0), // r2 = checksum - k
            insn(TO_BE, 2, 0, 0, 16),
            insn(STXH, 7, 2, at as i16, 0),
        ]);
    }
    body.extend([insn(MOV64_K, 0, 0, 0, XDP_TX), insn(EXIT, 0, 0, 0, 0)]);
    let mut p = vec![
        insn(LDXW, 7, 1, 0, 0),    // r7 = ctx->data (kept across the call)
        insn(LDXW, 3, 1, 4, 0),    // r3 = ctx->data_end
        insn(MOV64_X, 4, 7, 0, 0), // r4 = r7
        insn(ADD64_K, 4, 0, 0, header as i32),
        insn(JGT_X, 4, 3, body.len() as i16, 0), // if r4 > r3 goto drop
    ];
    p.extend(body);
    p.extend([insn(MOV64_K, 0, 0, 0, XDP_DROP), insn(EXIT, 0, 0, 0, 0)]);
    p
}

/// The frame the generator starts from, made from `frame` (Ethernet, then
/// IPv4 without options or IPv6 without extension headers, then UDP), and
/// where its program writes. IPv4: the UDP checksum cleared. IPv6: the
/// checksum kept valid, and at least `flows`, so that the program can take
/// the port's increase off it without a carry (and never reach 0, which
/// IPv6 forbids): if it is less, the last payload byte changes until it is
/// not.
fn generator_template(frame: &[u8], flows: u16) -> Result<(Vec<u8>, GenLayout)> {
    if !flows.is_power_of_two() {
        bail!("the XDP generator needs a power-of-two flow count");
    }
    let ethertype = frame.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]]));
    let mut frame = frame.to_vec();
    match ethertype {
        Some(0x0800) if frame.len() >= 42 && frame[14] == 0x45 && frame[23] == 17 => {
            frame[40..42].fill(0);
            Ok((
                frame,
                GenLayout {
                    header: 42,
                    sport: 34,
                    csum: None,
                },
            ))
        }
        Some(0x86dd) if frame.len() >= 62 && frame[14] >> 4 == 6 && frame[20] == 17 => {
            let checksum = |f: &[u8]| {
                let udp = &f[54..];
                let mut pseudo = f[22..54].to_vec();
                pseudo.extend_from_slice(&(udp.len() as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, 17]);
                let mut zeroed = udp.to_vec();
                zeroed[6..8].fill(0);
                csum(&zeroed, word_sum(&pseudo))
            };
            let last = frame.len() - 1;
            let mut c = checksum(&frame);
            while c < flows {
                frame[last] = frame[last].wrapping_add(1);
                c = checksum(&frame);
            }
            frame[60..62].copy_from_slice(&c.to_be_bytes());
            Ok((
                frame,
                GenLayout {
                    header: 62,
                    sport: 54,
                    csum: Some((60, c)),
                },
            ))
        }
        _ => bail!(
            "the XDP generator needs a UDP frame over IPv4 without options or IPv6 without \
             extension headers"
        ),
    }
}

/// A loaded [`generator_insns`] program and the frame it starts from.
pub struct GeneratorProg {
    fd: OwnedFd,
    frame: Vec<u8>,
}

/// Loads the generator's program for `frame` (an Ethernet/IPv4/UDP frame
/// without IP options, or Ethernet/IPv6/UDP, see [`generator_template`])
/// spreading its packets over `flows` source ports (a power of two) from
/// `frame`'s on.
pub fn load_generator(frame: &[u8], flows: u16) -> Result<GeneratorProg> {
    let (frame, layout) = generator_template(frame, flows)?;
    let fd = load_xdp(
        &generator_insns(&frame, flows, layout),
        "loading the XDP traffic generator",
    )?;
    Ok(GeneratorProg { fd, frame })
}

/// The kernel's XDP traffic generator (what xdp-tools' xdp-trafficgen
/// uses): BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES runs the
/// program on `repeat` frames and carries out its verdict for real. XDP_TX
/// becomes a redirect out of the context's device, so each frame goes from
/// the client's veth straight into the gateway's receive ring
/// (`ndo_xdp_xmit`): no socket, skb or qdisc on the sending side, 6–8 M
/// frames/s from one core on the test VM, more than twice what the fastest
/// gateway mode forwards (most are refused at once by the full ring). A
/// thread in the client namespace (the context's `ingress_ifindex` is
/// looked up in the caller's namespace), pinned to a CPU, runs it.
///
/// One call runs until stopped (`repeat` as large as it goes), and a
/// signal ends it (the kernel checks for one between batches and returns
/// EINTR): each call adds the program to the kernel's XDP dispatcher and
/// removes it again, and each change waits for an RCU grace period, which
/// with calls of some 25 ms took half the generator's time on this VM.
pub struct XdpGenerator {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// Interrupts the generator's syscall (see [`XdpGenerator`]).
const GEN_STOP_SIGNAL: libc::c_int = libc::SIGUSR1;

extern "C" fn on_gen_stop(_: libc::c_int) {}

impl XdpGenerator {
    /// Starts generating out of `dev` in namespace `ns`. Fails, without
    /// leaving a thread behind, if the kernel refuses live frames.
    pub fn start(ns: &str, dev: &str, prog: &GeneratorProg, cpu: Option<usize>) -> Result<Self> {
        // A handler without SA_RESTART, so the signal ends the syscall
        // (installing it again is harmless).
        // SAFETY: sigaction is plain data; the handler does nothing.
        unsafe {
            let mut sa: libc::sigaction = zeroed();
            sa.sa_sigaction = on_gen_stop as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(GEN_STOP_SIGNAL, &sa, std::ptr::null_mut()) != 0 {
                bail!("sigaction: {}", io::Error::last_os_error());
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (ns, dev) = (ns.to_owned(), dev.to_owned());
        let (stop2, done2) = (stop.clone(), done.clone());
        let prog_fd = prog.fd.try_clone().context("dup of the generator's fd")?;
        let frame = prog.frame.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let handle = thread::spawn(move || {
            let setup = || -> Result<u32> {
                enter_netns(&ns)?;
                if let Some(cpu) = cpu {
                    pin_to_cpu(cpu);
                }
                let name = std::ffi::CString::new(dev.as_str())?;
                // SAFETY: valid C string.
                let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
                if ifindex == 0 {
                    bail!("no interface {dev} in {ns}");
                }
                // One frame first: whether the kernel takes live frames at all.
                live_frames_run(&prog_fd, &frame, ifindex, 1)
                    .context("BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES")?;
                Ok(ifindex)
            };
            match setup() {
                Ok(ifindex) => {
                    let _ = ready_tx.send(Ok(()));
                    while !stop2.load(Ordering::Relaxed) {
                        match live_frames_run(&prog_fd, &frame, ifindex, u32::MAX) {
                            Ok(()) => {}
                            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                            Err(e) => {
                                eprintln!("xtask: bench: the XDP generator stopped: {e}");
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
            done2.store(true, Ordering::Release);
        });
        ready_rx
            .recv()
            .context("the generator thread died during setup")??;
        Ok(XdpGenerator {
            stop,
            done,
            handle: Some(handle),
        })
    }

    pub fn stop(&mut self) {
        use std::os::unix::thread::JoinHandleExt as _;
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            // Until the thread is out: a signal that comes just before
            // the syscall would be missed.
            while !self.done.load(Ordering::Acquire) {
                // SAFETY: the thread is not joined yet, so its pthread_t
                // is valid.
                unsafe { libc::pthread_kill(h.as_pthread_t(), GEN_STOP_SIGNAL) };
                thread::sleep(Duration::from_millis(5));
            }
            let _ = h.join();
        }
    }
}

impl Drop for XdpGenerator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One BPF_PROG_TEST_RUN of `prog` in live-frames mode: `repeat` frames
/// built from `frame`, as if received on `ifindex`.
fn live_frames_run(prog: &OwnedFd, frame: &[u8], ifindex: u32, repeat: u32) -> io::Result<()> {
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
    // rx_queue_index, egress_ifindex.
    let ctx: [u32; 6] = [0, frame.len() as u32, 0, ifindex, 0, 0];
    let mut attr = [0u64; 16];
    // The `test` member: prog_fd | retval, data_size_in | data_size_out,
    // data_in, data_out (none: live frames refuse it), repeat | duration,
    // ctx_size_in | ctx_size_out, ctx_in, ctx_out (none), flags | cpu,
    // batch_size (0: the kernel's default, 64).
    attr[0] = prog.as_raw_fd() as u64;
    attr[1] = frame.len() as u64;
    attr[2] = frame.as_ptr() as u64;
    attr[4] = repeat as u64;
    attr[5] = size_of_val(&ctx) as u64;
    attr[6] = ctx.as_ptr() as u64;
    attr[8] = BPF_F_TEST_XDP_LIVE_FRAMES as u64;
    sys_bpf(BPF_PROG_TEST_RUN, &mut attr).map(drop)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn v6_frame(sport: u16) -> Vec<u8> {
        udp6_frame(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            SocketAddrV6::new(
                Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 2),
                sport,
                0,
                0,
            ),
            SocketAddrV6::new(
                Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0x5db8, 0xd822),
                9,
                0,
                0,
            ),
        )
    }

    /// The UDP checksum of an Ethernet/IPv6/UDP frame, computed afresh.
    fn v6_checksum(f: &[u8]) -> u16 {
        let mut pseudo = f[22..54].to_vec();
        pseudo.extend_from_slice(&((f.len() - 54) as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
        let mut udp = f[54..].to_vec();
        udp[6..8].fill(0);
        csum(&udp, word_sum(&pseudo))
    }

    #[test]
    fn frames_are_64_and_84_bytes_with_the_same_datagram() {
        let v4 = udp_frame(
            [0; 6],
            [0; 6],
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 10_000),
            SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 9),
        );
        let v6 = v6_frame(10_000);
        assert_eq!((v4.len(), v6.len()), (64, 84));
        assert_eq!(v4[42..], v6[62..]);
        assert_eq!(u16::from_be_bytes([v6[60], v6[61]]), v6_checksum(&v6));
    }

    /// What the IPv6 generator's program writes for each flow k — the port
    /// plus k, the template's checksum minus k — is the checksum computed
    /// afresh for that port.
    #[test]
    fn ipv6_generator_checksums_hold_for_every_flow() {
        const FLOWS: u16 = 8;
        for base in [10_000, 1, 0xfff0, 4242] {
            let (template, layout) = generator_template(&v6_frame(base), FLOWS).unwrap();
            let (at, c) = layout.csum.expect("IPv6 fixes its checksum");
            assert_eq!((layout.header, layout.sport, at), (62, 54, 60));
            assert!(c >= FLOWS, "base {base}: checksum {c:#x}");
            for k in 0..FLOWS {
                let mut f = template.clone();
                f[54..56].copy_from_slice(&(base + k).to_be_bytes());
                let written = c - k;
                assert_ne!(written, 0, "base {base} k {k}");
                assert_eq!(written, v6_checksum(&f), "base {base} k {k}");
            }
        }
    }

    #[test]
    fn ipv4_generator_sends_no_checksum() {
        let f = udp_frame(
            [0; 6],
            [0; 6],
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 10_000),
            SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 9),
        );
        let (template, layout) = generator_template(&f, 8).unwrap();
        assert_eq!(template[40..42], [0, 0]);
        assert_eq!(
            layout,
            GenLayout {
                header: 42,
                sport: 34,
                csum: None
            }
        );
        assert!(generator_template(&f, 6).is_err());
        assert!(generator_template(&f[..30], 8).is_err());
    }
}
