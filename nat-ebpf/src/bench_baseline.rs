//! The minimal NAT of `cargo xtask bench`: the irreducible work of a NAT on
//! a packet of an established flow — parse to the ports, one hash lookup
//! keyed by the endpoint being translated, rewrite address and port with
//! incremental checksums — and nothing else (no sessions, timeouts,
//! filtering, counters, fragments or ICMP). Measured in the same run as
//! xnat's programs, it is the fair baseline for their per-packet cost: a
//! ratio to it does not move with the machine as a ratio to a no-op does.
//!
//! Beside it, the bare XDP redirect of the end-to-end benchmark
//! (`xnat_baseline_redirect_xdp`): IPv4 forwarding by XDP and nothing
//! else, the physical limit of xnat's XDP fast path on the same path.
//!
//! A separate object (`bench-baseline`), never loaded by `xnat` itself.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod baseline {
    use aya_ebpf::{
        EbpfContext,
        bindings::{
            BPF_F_PSEUDO_HDR, BPF_FIB_LKUP_RET_SUCCESS, TC_ACT_OK, bpf_fib_lookup, xdp_action,
        },
        helpers::generated::{bpf_fib_lookup as fib_lookup, bpf_redirect},
        macros::{classifier, map, xdp},
        maps::HashMap,
        programs::{TcContext, XdpContext},
    };
    use nat_common::{EndpointKey, InsideEndpoint, bench::BASELINE_MAX_ENTRIES, csum};

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
        // SAFETY: as above.
        let (data, end) = unsafe {
            let skb = core::ptr::read_volatile(&ctx.skb.skb);
            ((*skb).data as usize, (*skb).data_end as usize)
        };
        let Some(f) = parse(data, end) else {
            return TC_ACT_OK;
        };
        let (ip, l4) = (data + f.ip, data + f.l4);
        let (addr, port): (u32, u16) = (read(ip + IP_SRC), read(l4));
        let Some(to) = lookup(&BASELINE_OUT, addr, port, f.proto) else {
            return TC_ACT_OK;
        };
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
        TC_ACT_OK
    }

    const IP_TTL: usize = 8;
    const IP_TOT_LEN: usize = 2;
    const AF_INET: u8 = 2;

    /// The bare XDP redirect: forwards an IPv4 frame the way any XDP
    /// router must, with nothing else — no NAT, no route cache, no check
    /// of the egress device — so that xnat's XDP fast path
    /// (`forward::fastpath::outbound_xdp`) has a ceiling measured on the
    /// same topology, sender and run. Whatever it cannot forward goes to
    /// the stack (XDP_PASS), which forwards it the slow way: ARP, the
    /// first packets before the neighbour is known, TTL expiry.
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
        // The kernel's own route and neighbour lookup, as arrived on this
        // interface (flags 0: policy routing included, as the stack's own
        // forwarding does it). tot_len lets it check the egress MTU: a
        // packet that would need fragmenting is not SUCCESS.
        // SAFETY: zeroed plain-data struct.
        let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
        params.family = AF_INET;
        params.l4_protocol = read(ip + 9);
        params.__bindgen_anon_1.tot_len = u16::from_be(read(ip + IP_TOT_LEN));
        // SAFETY: reading the program's own context.
        params.ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
        params.__bindgen_anon_3.ipv4_src = read(ip + IP_SRC);
        params.__bindgen_anon_4.ipv4_dst = read(ip + IP_DST);
        // SAFETY: helper call with a stack struct of the size we pass.
        let rc = unsafe {
            fib_lookup(
                ctx.as_ptr(),
                &mut params,
                core::mem::size_of::<bpf_fib_lookup>() as i32,
                0,
            )
        };
        // Anything but a resolved next hop (no route, local delivery,
        // blackhole, unresolved neighbour, fragmentation needed) is the
        // stack's: XDP cannot resolve a neighbour or fragment.
        if rc as u32 != BPF_FIB_LKUP_RET_SUCCESS {
            return xdp_action::XDP_PASS;
        }
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
        // The next hop's MAC as destination, the egress device's as
        // source: the FIB filled both in.
        write(data, params.dmac);
        write(data + 6, params.smac);
        // Out of the egress device (ndo_xdp_xmit). bpf_redirect by ifindex,
        // as xnat's fast path does (`forward::route::send`), so the two
        // differ only in what xnat does besides.
        // SAFETY: helper call.
        unsafe { bpf_redirect(params.ifindex, 0) as u32 }
    }
}

#[cfg(target_arch = "bpf")]
mod object;

/// On the host this file is only type-checked.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
