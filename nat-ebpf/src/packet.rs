//! Byte access to a packet, the same for XDP buffers and skbs.
//!
//! Accesses inside the linear part of the packet (all of an XDP frame; the
//! skb head, which holds the headers of nearly every packet) read and write
//! the bytes directly: a helper call per field cost more than the rest of
//! the translation. Anything else (a header in a paged skb fragment, an
//! offset past [`DIRECT_MAX`]) goes through the kernel's load/store
//! helpers, so the caller sees one behaviour: an access to bytes that are
//! not in the packet returns `None` and the packet counts as truncated.
use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    helpers::generated::{
        bpf_csum_update, bpf_skb_load_bytes, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
    programs::{TcContext, XdpContext},
};
use core::mem::{MaybeUninit, size_of};
use nat_common::csum;

/// Largest offset read directly. A bound the verifier can see is what lets
/// it accept a variable offset (IPv4 options, ICMP quotes) into the packet.
const DIRECT_MAX: u32 = 0x1000;

/// The address of `size` bytes at `off` when they lie in `[data, data_end)`.
#[inline(always)]
fn direct(data: usize, data_end: usize, off: u32, size: usize) -> Option<usize> {
    if off > DIRECT_MAX {
        return None;
    }
    // LLVM turns `at + 1 <= end` into `at < end`, from which the verifier
    // learns no range at all; checking two bytes keeps the `+ n` form. (A
    // single byte at the very end of the packet goes through the helper.)
    let checked = if size < 2 { 2 } else { size };
    let at = data + off as usize;
    (at + checked <= data_end).then_some(at)
}

/// `data` and `data_end` of an XDP frame. The context pointer is re-read
/// through a volatile load: otherwise LLVM keeps `ctx + offsetof(data_end)`
/// in a register or on the stack, and the verifier refuses to dereference
/// a modified context pointer.
#[inline(always)]
fn xdp_bounds(ctx: &XdpContext) -> (usize, usize) {
    // SAFETY: reading our own context's fields.
    unsafe {
        let md = core::ptr::read_volatile(&ctx.ctx);
        ((*md).data as usize, (*md).data_end as usize)
    }
}

/// The same for the linear part of an skb.
#[inline(always)]
fn skb_bounds(ctx: &TcContext) -> (usize, usize) {
    // SAFETY: as above.
    unsafe {
        let skb = core::ptr::read_volatile(&ctx.skb.skb);
        ((*skb).data as usize, (*skb).data_end as usize)
    }
}

/// Reads a `T` from the packet at `at` (checked by [`direct`]), in loads
/// as wide as `T`'s fields.
///
/// Header fields in a frame are only 2-byte aligned (the IPv4 header
/// follows 14 bytes of Ethernet), and an unaligned read (alignment 1)
/// compiles to one BPF byte load per byte: a 20-byte IPv4 header became
/// 20 loads and shifts, a sixth of an established translation. The BPF
/// targets xnat runs on (x86-64, arm64 JITs) load and store any width at
/// any address, and the verifier only enforces packet alignment under
/// BPF_F_STRICT_ALIGNMENT (never set here), as C programs reading
/// `iph->saddr` rely on too. So these are plain loads at `T`'s width;
/// `T`s are integers, arrays of them and `#[repr(C)]` headers.
#[inline(always)]
fn read_at<T: Copy>(at: usize) -> T {
    // SAFETY: `direct` checked that size_of::<T>() bytes at `at` are in
    // the packet; the access width is what the JIT emits, see above.
    #[allow(clippy::cast_ptr_alignment)]
    unsafe {
        core::ptr::read(at as *const T)
    }
}

/// Writes a `T` into the packet at `at` (checked by [`direct`]), in
/// stores as wide as its fields (see [`read_at`]).
#[inline(always)]
fn write_at<T: Copy>(at: usize, value: &T) {
    // SAFETY: as in `read_at`; the programs may write their packet.
    #[allow(clippy::cast_ptr_alignment)]
    unsafe {
        core::ptr::write(at as *mut T, *value)
    }
}

pub trait Packet {
    /// Total packet length in bytes, from the Ethernet header on.
    fn len(&self) -> u32;
    /// Reads a `T` at `off`; `None` if it is not entirely inside the packet.
    fn load<T: Copy>(&self, off: u32) -> Option<T>;
    /// Reads a `T` at `off` in the linear part only (no helper fallback):
    /// one branch, for loops the verifier walks iteration by iteration.
    fn load_linear<T: Copy>(&self, off: u32) -> Option<T>;
    /// Writes a `T` at `off`.
    fn store<T: Copy>(&mut self, off: u32, value: &T) -> Option<()>;
    /// Fixes the TCP (`udp == false`) or UDP checksum at `csum_off` after a
    /// pseudo-header address changed from `old` to `new`.
    fn fix_l4_csum_for_addr(&mut self, csum_off: u32, old: u32, new: u32, udp: bool) -> Option<()>;
    /// Fixes the TCP or UDP checksum at `csum_off` after a port (a field
    /// of the segment itself) changed from `old` to `new`.
    fn fix_l4_csum_for_port(&mut self, csum_off: u32, old: u16, new: u16, udp: bool) -> Option<()>;
    /// Fixes the TCP or UDP checksum at `csum_off` after both the address
    /// and the port of an endpoint changed: by default the two fixes above
    /// (in TC they must stay apart — in a CHECKSUM_PARTIAL skb only the
    /// pseudo-header part goes into the field).
    #[inline(always)]
    fn fix_l4_csum_for_endpoint(
        &mut self,
        csum_off: u32,
        (old, new): (u32, u32),
        (old_port, new_port): (u16, u16),
        udp: bool,
    ) -> Option<()> {
        self.fix_l4_csum_for_addr(csum_off, old, new, udp)?;
        if old_port != new_port {
            self.fix_l4_csum_for_port(csum_off, old_port, new_port, udp)?;
        }
        Some(())
    }
    /// Copies `len` bytes at `off` to `dst` (`len` bounded where the
    /// verifier sees it); `false` if they are not all in the packet.
    fn copy_out(&self, off: u32, dst: *mut u8, len: u32) -> bool;
    /// The skb behind the packet, for what only TC can do (clone it to
    /// hold and release fragments); `None` for an XDP frame.
    fn skb(&self) -> Option<&TcContext>;
}

pub struct XdpPacket<'a> {
    pub ctx: &'a XdpContext,
    /// `data` and `data_end`, read once: a translation never moves an XDP
    /// frame's bounds (no head or tail adjustment), and a load of the
    /// context per access was a tenth of an established translation.
    data: usize,
    data_end: usize,
}

impl<'a> XdpPacket<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a XdpContext) -> Self {
        let (data, data_end) = xdp_bounds(ctx);
        XdpPacket {
            ctx,
            data,
            data_end,
        }
    }

    /// Applies `update` to the TCP (`udp == false`) or UDP checksum at
    /// `csum_off`. XDP sees frames as they came off the wire: the field is
    /// a complete checksum, so RFC 1624 arithmetic applies directly (for
    /// UDP keeping its "no checksum" 0, `csum::udp`).
    #[inline(always)]
    fn update_l4_csum(
        &mut self,
        csum_off: u32,
        udp: bool,
        update: impl FnOnce(u16) -> u16,
    ) -> Option<()> {
        let check: u16 = self.load(csum_off)?;
        let fixed = if udp {
            csum::udp(check, update)
        } else {
            update(check)
        };
        self.store(csum_off, &fixed)
    }
}

impl Packet for XdpPacket<'_> {
    #[inline(always)]
    fn load_linear<T: Copy>(&self, off: u32) -> Option<T> {
        direct(self.data, self.data_end, off, size_of::<T>()).map(read_at)
    }

    #[inline(always)]
    fn len(&self) -> u32 {
        // The programs are not loaded with BPF_F_XDP_HAS_FRAGS, so a frame
        // is always one linear buffer.
        let (data, data_end) = (self.data, self.data_end);
        (data_end - data) as u32
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: u32) -> Option<T> {
        let (data, data_end) = (self.data, self.data_end);
        if let Some(at) = direct(data, data_end, off, size_of::<T>()) {
            return Some(read_at(at));
        }
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
        let (data, data_end) = (self.data, self.data_end);
        if let Some(at) = direct(data, data_end, off, size_of::<T>()) {
            write_at(at, value);
            return Some(());
        }
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
        self.update_l4_csum(csum_off, udp, |c| csum::replace4(c, old, new))
    }

    /// One load, one fold and one store of the checksum for both fields
    /// (the per-packet path of every XDP translation).
    #[inline(always)]
    fn fix_l4_csum_for_endpoint(
        &mut self,
        csum_off: u32,
        (old, new): (u32, u32),
        (old_port, new_port): (u16, u16),
        udp: bool,
    ) -> Option<()> {
        self.update_l4_csum(csum_off, udp, |c| {
            csum::replace_endpoint(c, old, new, old_port, new_port)
        })
    }

    #[inline(always)]
    fn fix_l4_csum_for_port(&mut self, csum_off: u32, old: u16, new: u16, udp: bool) -> Option<()> {
        self.update_l4_csum(csum_off, udp, |c| csum::replace2(c, old, new))
    }

    #[inline(always)]
    fn copy_out(&self, off: u32, dst: *mut u8, len: u32) -> bool {
        // SAFETY: the helper writes at most `len` bytes to `dst`, which the
        // caller sized.
        unsafe { bpf_xdp_load_bytes(self.ctx.ctx, off, dst.cast(), len) == 0 }
    }

    #[inline(always)]
    fn skb(&self) -> Option<&TcContext> {
        None
    }
}

pub struct TcPacket<'a> {
    pub ctx: &'a TcContext,
}

impl Packet for TcPacket<'_> {
    #[inline(always)]
    fn load_linear<T: Copy>(&self, off: u32) -> Option<T> {
        let (data, data_end) = skb_bounds(self.ctx);
        direct(data, data_end, off, size_of::<T>()).map(read_at)
    }

    #[inline(always)]
    fn len(&self) -> u32 {
        self.ctx.len()
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: u32) -> Option<T> {
        let (data, data_end) = skb_bounds(self.ctx);
        if let Some(at) = direct(data, data_end, off, size_of::<T>()) {
            return Some(read_at(at));
        }
        self.ctx.load::<T>(off as usize).ok()
    }

    #[inline(always)]
    fn store<T: Copy>(&mut self, off: u32, value: &T) -> Option<()> {
        let (data, data_end) = skb_bounds(self.ctx);
        if let Some(at) = direct(data, data_end, off, size_of::<T>()) {
            write_at(at, value);
            return Some(());
        }
        // A copy on the stack: a reference to a constant would become a
        // pointer into a `.rodata` map, one more map for user space to
        // handle.
        let copy = *value;
        self.ctx.store(off as usize, &copy, 0).ok()
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
            if self.load::<u16>(csum_off)? == 0 {
                // No UDP checksum: the helper leaves the field alone, so
                // nothing balances the port's change in skb->csum (with
                // CHECKSUM_COMPLETE): add it there (a no-op, and an error
                // we ignore, for any other checksum state).
                let delta = (!old as u32 & 0xffff) + new as u32;
                // SAFETY: helper on our own skb.
                unsafe { bpf_csum_update(self.ctx.skb.skb, delta) };
                return Some(());
            }
        }
        self.ctx
            .l4_csum_replace(csum_off as usize, old as u64, new as u64, flags)
            .ok()
    }

    #[inline(always)]
    fn copy_out(&self, off: u32, dst: *mut u8, len: u32) -> bool {
        // SAFETY: as for XDP.
        unsafe { bpf_skb_load_bytes(self.ctx.skb.skb.cast(), off, dst.cast(), len) == 0 }
    }

    #[inline(always)]
    fn skb(&self) -> Option<&TcContext> {
        Some(self.ctx)
    }
}
