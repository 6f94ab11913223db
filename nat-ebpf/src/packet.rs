//! Byte access to a packet, the same for XDP buffers and skbs.
//!
//! Both implementations go through the kernel's load/store helpers, so a
//! variable offset (IPv4 options, ICMP inner headers) needs no verifier
//! bounds gymnastics: an out-of-range access simply fails and the caller
//! treats the packet as truncated.
use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    helpers::generated::{bpf_xdp_get_buff_len, bpf_xdp_load_bytes, bpf_xdp_store_bytes},
    programs::{TcContext, XdpContext},
};
use core::mem::{MaybeUninit, size_of};
use nat_common::{FragKey, csum};

use crate::parse::Ipv4;

pub trait Packet {
    /// Total packet length in bytes, from the Ethernet header on.
    fn len(&self) -> u32;
    /// Reads a `T` at `off`; `None` if it is not entirely inside the packet.
    fn load<T: Copy>(&self, off: u32) -> Option<T>;
    /// Writes a `T` at `off`.
    fn store<T: Copy>(&mut self, off: u32, value: &T) -> Option<()>;
    /// Fixes the TCP (`udp == false`) or UDP checksum at `csum_off` after a
    /// pseudo-header address changed from `old` to `new`.
    fn fix_l4_csum_for_addr(&mut self, csum_off: u32, old: u32, new: u32, udp: bool) -> Option<()>;
    /// Fixes the TCP or UDP checksum at `csum_off` after a port (a field
    /// of the segment itself) changed from `old` to `new`.
    fn fix_l4_csum_for_port(&mut self, csum_off: u32, old: u16, new: u16, udp: bool) -> Option<()>;
    /// Holds a later fragment that came before its first fragment; false
    /// where that is impossible (XDP cannot clone packets).
    fn hold_fragment(&mut self, ip: &Ipv4, key: &FragKey) -> bool;
    /// Sends the held fragments of `key` after its first fragment.
    fn release_fragments(&mut self, key: &FragKey, inbound: bool, new_addr: u32);
}

pub struct XdpPacket<'a> {
    pub ctx: &'a XdpContext,
}

impl Packet for XdpPacket<'_> {
    #[inline(always)]
    fn len(&self) -> u32 {
        // SAFETY: helper call on the program's own context.
        unsafe { bpf_xdp_get_buff_len(self.ctx.ctx) as u32 }
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: u32) -> Option<T> {
        let mut out = MaybeUninit::<T>::uninit();
        // SAFETY: the helper writes exactly size_of::<T>() bytes or fails.
        let ret = unsafe {
            bpf_xdp_load_bytes(
                self.ctx.ctx,
                off,
                out.as_mut_ptr().cast(),
                size_of::<T>() as u32,
            )
        };
        // SAFETY: ret == 0 means the buffer was filled.
        (ret == 0).then(|| unsafe { out.assume_init() })
    }

    #[inline(always)]
    fn store<T: Copy>(&mut self, off: u32, value: &T) -> Option<()> {
        let mut copy = *value;
        // SAFETY: the helper reads size_of::<T>() bytes from `copy`.
        let ret = unsafe {
            bpf_xdp_store_bytes(
                self.ctx.ctx,
                off,
                (&mut copy as *mut T).cast(),
                size_of::<T>() as u32,
            )
        };
        (ret == 0).then_some(())
    }

    #[inline(always)]
    fn fix_l4_csum_for_addr(&mut self, csum_off: u32, old: u32, new: u32, udp: bool) -> Option<()> {
        // XDP sees frames as they came off the wire: the checksum field is a
        // complete checksum, so RFC 1624 arithmetic applies directly.
        let check: u16 = self.load(csum_off)?;
        let fixed = if udp {
            csum::replace4_udp(check, old, new)
        } else {
            csum::replace4(check, old, new)
        };
        self.store(csum_off, &fixed)
    }

    #[inline(always)]
    fn fix_l4_csum_for_port(&mut self, csum_off: u32, old: u16, new: u16, udp: bool) -> Option<()> {
        let check: u16 = self.load(csum_off)?;
        let fixed = if udp {
            csum::replace2_udp(check, old, new)
        } else {
            csum::replace2(check, old, new)
        };
        self.store(csum_off, &fixed)
    }

    #[inline(always)]
    fn hold_fragment(&mut self, _ip: &Ipv4, _key: &FragKey) -> bool {
        false
    }

    #[inline(always)]
    fn release_fragments(&mut self, _key: &FragKey, _inbound: bool, _new_addr: u32) {}
}

// (XDP's hold/release are defined in its impl above.)
pub struct TcPacket<'a> {
    pub ctx: &'a TcContext,
}

impl Packet for TcPacket<'_> {
    #[inline(always)]
    fn len(&self) -> u32 {
        self.ctx.len()
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: u32) -> Option<T> {
        self.ctx.load::<T>(off as usize).ok()
    }

    #[inline(always)]
    fn store<T: Copy>(&mut self, off: u32, value: &T) -> Option<()> {
        self.ctx.store(off as usize, value, 0).ok()
    }

    #[inline(always)]
    fn fix_l4_csum_for_addr(&mut self, csum_off: u32, old: u32, new: u32, udp: bool) -> Option<()> {
        // The kernel helper knows the skb's checksum state: with
        // CHECKSUM_PARTIAL (every locally sent or veth-forwarded segment)
        // the field holds only the pseudo-header sum and must be updated as
        // such. BPF_F_MARK_MANGLED_0 keeps a UDP "no checksum" 0 as 0 and
        // sends a computed 0 as 0xffff.
        let mut flags = (BPF_F_PSEUDO_HDR as u64) | 4;
        if udp {
            flags |= BPF_F_MARK_MANGLED_0 as u64;
        }
        self.ctx
            .l4_csum_replace(csum_off as usize, old as u64, new as u64, flags)
            .ok()
    }

    #[inline(always)]
    fn fix_l4_csum_for_port(&mut self, csum_off: u32, old: u16, new: u16, udp: bool) -> Option<()> {
        // Not a pseudo-header field: with CHECKSUM_PARTIAL the helper leaves
        // the field alone (the port is summed when the checksum is
        // completed), otherwise it applies the incremental update.
        let mut flags = 2u64;
        if udp {
            flags |= BPF_F_MARK_MANGLED_0 as u64;
        }
        self.ctx
            .l4_csum_replace(csum_off as usize, old as u64, new as u64, flags)
            .ok()
    }

    #[inline(always)]
    fn hold_fragment(&mut self, ip: &Ipv4, key: &FragKey) -> bool {
        crate::frag_hold::hold(self.ctx, ip, key)
    }

    #[inline(always)]
    fn release_fragments(&mut self, key: &FragKey, inbound: bool, new_addr: u32) {
        crate::frag_hold::release(self.ctx, key, inbound, new_addr)
    }
}
