//! The minimal NAT of `cargo xtask bench`: the irreducible work of a NAT on
//! a packet of an established flow — parse to the ports, one hash lookup
//! keyed by the endpoint being translated, rewrite address and port with
//! incremental checksums — and nothing else (no sessions, timeouts,
//! filtering, counters, fragments or ICMP). Measured in the same run as
//! xnat's programs, it is the fair baseline for their per-packet cost: a
//! ratio to it does not move with the machine as a ratio to a no-op does.
//!
//! Beside it, the bare XDP redirect of the end-to-end benchmark
//! (`xnat_baseline_redirect_xdp`): IPv4 forwarding by XDP to a fixed next
//! hop and nothing else, the physical limit of xnat's XDP fast path on the
//! same path.
//!
//! A separate object (`bench-baseline`), never loaded by `xnat` itself.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod baseline {
    use aya_ebpf::{
        bindings::{BPF_F_PSEUDO_HDR, TC_ACT_OK, xdp_action},
        helpers::generated::{bpf_get_prandom_u32, bpf_redirect},
        macros::{classifier, map, xdp},
        maps::{Array, HashMap},
        programs::{TcContext, XdpContext},
    };
    use nat_common::{
        EndpointKey, InsideEndpoint,
        bench::{BASELINE_MAX_ENTRIES, RedirectHop},
        csum,
    };

    // The map names are `nat_common::bench::MAP_BASELINE_*`.

    /// Public endpoint → inside endpoint (the inbound direction).
    #[map]
    static BASELINE_IN: HashMap<EndpointKey, InsideEndpoint> =
        HashMap::with_max_entries(BASELINE_MAX_ENTRIES, 0);

    /// Inside endpoint → public endpoint (the outbound direction).
    #[map]
    static BASELINE_OUT: HashMap<EndpointKey, InsideEndpoint> =
        HashMap::with_max_entries(BASELINE_MAX_ENTRIES, 0);

    const ETH_HLEN: usize = 14;
    const IP_SRC: usize = 12;
    const IP_DST: usize = 16;
    const IP_CHECK: usize = 10;
    const TCP: u8 = 6;
    const UDP: u8 = 17;

    /// Where the fields of an IPv4 TCP or UDP packet are (offsets from the
    /// start of the frame).
    struct Fields {
        ip: usize,
        l4: usize,
        proto: u8,
        /// Offset of the transport checksum within the transport header.
        check: usize,
    }

    /// The fields of the frame in `[data, end)`, if it is IPv4 TCP/UDP
    /// whose headers are all in the linear part.
    #[inline(always)]
    fn parse(data: usize, end: usize) -> Option<Fields> {
        if data + ETH_HLEN + 20 > end {
            return None;
        }
        // SAFETY (all reads): bounds checked just above or below.
        let eth_type = unsafe { core::ptr::read_unaligned((data + 12) as *const u16) };
        if eth_type != 0x0008 {
            return None;
        }
        let ip = data + ETH_HLEN;
        let ihl = (unsafe { *(ip as *const u8) } & 0x0f) as usize * 4;
        if ihl < 20 {
            return None;
        }
        let proto = unsafe { *((ip + 9) as *const u8) };
        let (check, need) = match proto {
            TCP => (16, 20),
            UDP => (6, 8),
            _ => return None,
        };
        let l4 = ip + ihl;
        if l4 + need > end {
            return None;
        }
        Some(Fields {
            ip: ip - data,
            l4: l4 - data,
            proto,
            check,
        })
    }

    /// The one lookup: the endpoint `addr`:`port` of `proto` in `map`.
    #[inline(always)]
    fn lookup(
        map: &HashMap<EndpointKey, InsideEndpoint>,
        addr: u32,
        port: u16,
        proto: u8,
    ) -> Option<InsideEndpoint> {
        let key = EndpointKey {
            addr,
            port,
            proto,
            _pad: 0,
        };
        // SAFETY: plain copy of the value.
        unsafe { map.get(&key).copied() }
    }

    #[inline(always)]
    fn read<T: Copy>(at: usize) -> T {
        // SAFETY: callers pass offsets `parse` bounds-checked.
        unsafe { core::ptr::read_unaligned(at as *const T) }
    }

    #[inline(always)]
    fn write<T: Copy>(at: usize, v: T) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_unaligned(at as *mut T, v) }
    }

    /// Inbound: the destination endpoint becomes the inside one.
    #[xdp]
    pub fn xnat_baseline_xdp(ctx: XdpContext) -> u32 {
        // SAFETY: our own context; re-read volatile so the verifier sees
        // the context pointer itself (as nat-ebpf's packet module does).
        let (data, end) = unsafe {
            let md = core::ptr::read_volatile(&ctx.ctx);
            ((*md).data as usize, (*md).data_end as usize)
        };
        let Some(f) = parse(data, end) else {
            return xdp_action::XDP_PASS;
        };
        let (ip, l4) = (data + f.ip, data + f.l4);
        let (addr, port): (u32, u16) = (read(ip + IP_DST), read(l4 + 2));
        let Some(to) = lookup(&BASELINE_IN, addr, port, f.proto) else {
            return xdp_action::XDP_PASS;
        };
        write(ip + IP_DST, to.addr);
        write(
            ip + IP_CHECK,
            csum::replace4(read(ip + IP_CHECK), addr, to.addr),
        );
        write(l4 + 2, to.port);
        let at = l4 + f.check;
        let check: u16 = read(at);
        let check = if f.proto == UDP {
            csum::replace2_udp(csum::replace4_udp(check, addr, to.addr), port, to.port)
        } else {
            csum::replace2(csum::replace4(check, addr, to.addr), port, to.port)
        };
        write(at, check);
        xdp_action::XDP_PASS
    }

    /// Outbound: the source endpoint becomes the public one. The transport
    /// checksum goes through the kernel's helper, which knows the skb's
    /// checksum state (CHECKSUM_PARTIAL on locally sent packets), as any
    /// correct TC NAT must.
    #[classifier]
    pub fn xnat_baseline_tc(ctx: TcContext) -> i32 {
        let Some((data, f)) = outbound_fields(&ctx) else {
            return TC_ACT_OK;
        };
        let (addr, port): (u32, u16) = (read(data + f.ip + IP_SRC), read(data + f.l4));
        if let Some(to) = lookup(&BASELINE_OUT, addr, port, f.proto) {
            rewrite_source(&ctx, data, &f, addr, port, to);
        }
        TC_ACT_OK
    }

    /// New bindings: the least any NAT does to make one on an outbound
    /// packet — the outbound lookup that misses, a public port reserved by
    /// a BPF_NOEXIST insert into the inbound table (the inside port if
    /// free, else random probes), the outbound entry inserted, the rewrite
    /// — with tables as large as xnat's: the floor under xnat's new
    /// binding on the same machine (the hash tables' cache misses). No
    /// timestamps, sessions, pool table, port range or counters; the
    /// public address is one of 256 picked by a hash of the inside one.
    #[classifier]
    pub fn xnat_baseline_new_tc(ctx: TcContext) -> i32 {
        let Some((data, f)) = outbound_fields(&ctx) else {
            return TC_ACT_OK;
        };
        let (addr, port): (u32, u16) = (read(data + f.ip + IP_SRC), read(data + f.l4));
        let to = match lookup(&BASELINE_OUT, addr, port, f.proto) {
            Some(to) => to,
            None => {
                let b = addr.to_ne_bytes();
                let public = u32::from_ne_bytes([198, 18, 1, b[0] ^ b[1] ^ b[2] ^ b[3]]);
                let inside = InsideEndpoint {
                    addr,
                    port,
                    flags: 0,
                };
                let mut chosen = None;
                let mut want = port;
                let mut i = 0;
                while i < BASELINE_PROBES {
                    let key = EndpointKey {
                        addr: public,
                        port: want,
                        proto: f.proto,
                        _pad: 0,
                    };
                    if BASELINE_IN.insert(&key, &inside, BPF_NOEXIST).is_ok() {
                        chosen = Some(want);
                        break;
                    }
                    // SAFETY: helper without arguments.
                    let r = unsafe { bpf_get_prandom_u32() };
                    want = (1024 + r % (65536 - 1024)) as u16;
                    i += 1;
                }
                let Some(public_port) = chosen else {
                    return TC_ACT_OK;
                };
                let to = InsideEndpoint {
                    addr: public,
                    port: public_port,
                    flags: 0,
                };
                let key = EndpointKey {
                    addr,
                    port,
                    proto: f.proto,
                    _pad: 0,
                };
                if BASELINE_OUT.insert(&key, &to, BPF_NOEXIST).is_err() {
                    return TC_ACT_OK;
                }
                to
            }
        };
        rewrite_source(&ctx, data, &f, addr, port, to);
        TC_ACT_OK
    }

    const BPF_NOEXIST: u64 = 1;
    const BASELINE_PROBES: u32 = 8;

    /// The frame's start and fields, if it is IPv4 TCP/UDP.
    #[inline(always)]
    fn outbound_fields(ctx: &TcContext) -> Option<(usize, Fields)> {
        // SAFETY: as in `xnat_baseline_xdp`.
        let (data, end) = unsafe {
            let skb = core::ptr::read_volatile(&ctx.skb.skb);
            ((*skb).data as usize, (*skb).data_end as usize)
        };
        parse(data, end).map(|f| (data, f))
    }

    /// Source `addr`:`port` becomes `to`, with every checksum.
    #[inline(always)]
    fn rewrite_source(
        ctx: &TcContext,
        data: usize,
        f: &Fields,
        addr: u32,
        port: u16,
        to: InsideEndpoint,
    ) {
        let (ip, l4) = (data + f.ip, data + f.l4);
        write(ip + IP_SRC, to.addr);
        write(
            ip + IP_CHECK,
            csum::replace4(read(ip + IP_CHECK), addr, to.addr),
        );
        write(l4, to.port);
        // The helpers below invalidate packet pointers: nothing is read
        // through them after this point.
        let at = f.l4 + f.check;
        let _ = ctx.l4_csum_replace(at, addr as u64, to.addr as u64, BPF_F_PSEUDO_HDR as u64 | 4);
        let _ = ctx.l4_csum_replace(at, port as u64, to.port as u64, 2);
    }

    const IP_TTL: usize = 8;

    /// The bare redirect's next hop, index 0: egress ifindex, its MAC, the
    /// next hop's MAC. Written once by the loader before attaching.
    #[map]
    static BASELINE_HOP: Array<RedirectHop> = Array::with_max_entries(1, 0);

    /// The bare XDP redirect: the physical limit of forwarding a frame by
    /// XDP redirect, i.e. the least work any XDP forwarder must do per
    /// frame — check it is IPv4 that may still be forwarded, decrement the
    /// TTL (with the header checksum fixed), write the two MACs, redirect —
    /// and nothing else: no NAT, no route or neighbour lookup (the next hop
    /// is fixed, given by the loader in `BASELINE_HOP`), no check of the
    /// egress device. Any real forwarder also has to find its next hop
    /// (xnat's fast path: a FIB lookup cached per CPU per tick), so none
    /// can be cheaper; this is the ceiling of xnat's XDP fast path
    /// (`forward::fastpath::outbound_xdp`) on the same topology, sender and
    /// run. What it does not forward goes to the stack (XDP_PASS): not
    /// IPv4 (ARP), TTL expiry.
    #[xdp]
    pub fn xnat_baseline_redirect_xdp(ctx: XdpContext) -> u32 {
        // SAFETY: as in `xnat_baseline_xdp`.
        let (data, end) = unsafe {
            let md = core::ptr::read_volatile(&ctx.ctx);
            ((*md).data as usize, (*md).data_end as usize)
        };
        // Ethernet + the fixed IPv4 header: all that forwarding reads or
        // writes (options, if any, are carried along untouched).
        if data + ETH_HLEN + 20 > end {
            return xdp_action::XDP_PASS;
        }
        let eth_type: u16 = read(data + 12);
        if eth_type != 0x0008 {
            return xdp_action::XDP_PASS;
        }
        let ip = data + ETH_HLEN;
        // A router must not forward a packet whose TTL would reach 0: the
        // stack drops it and sends the ICMP time exceeded.
        let ttl: u8 = read(ip + IP_TTL);
        if ttl <= 1 {
            return xdp_action::XDP_PASS;
        }
        // An array lookup the verifier inlines (a bounds check and an
        // address): the least a program can do to learn its next hop.
        let Some(hop) = BASELINE_HOP.get(0) else {
            return xdp_action::XDP_PASS;
        };
        // TTL - 1 with the header checksum fixed incrementally (RFC 1624)
        // over the 16-bit word holding TTL and protocol.
        let word: u16 = read(ip + IP_TTL);
        let mut bytes = word.to_ne_bytes();
        bytes[0] = bytes[0].wrapping_sub(1);
        let new = u16::from_ne_bytes(bytes);
        write(ip + IP_TTL, new);
        write(
            ip + IP_CHECK,
            csum::replace2(read(ip + IP_CHECK), word, new),
        );
        // The next hop's MAC as destination, the egress device's as source.
        write(data, hop.dmac);
        write(data + 6, hop.smac);
        // Out of the egress device (ndo_xdp_xmit). bpf_redirect by ifindex,
        // as xnat's fast path does (`forward::route::send`), so the two
        // differ only in what xnat does besides.
        // SAFETY: helper call.
        unsafe { bpf_redirect(hop.ifindex, 0) as u32 }
    }
}

#[cfg(target_arch = "bpf")]
mod object;

/// On the host this file is only type-checked.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
