//! The data plane's self-test (`xnat status --check`): one frame through an
//! attached program with BPF_PROG_TEST_RUN. The program is found through
//! its pinned link (link -> program id -> program fd), so what runs is the
//! very program the device runs, on the attachment's own maps, not a fresh
//! copy loaded for the test.
//!
//! The frame is one no NAT owns whatever the config says: an Ethernet
//! frame of the IEEE 802 local experimental Ethertype (0x88B5), so not
//! IPv4. Every program must hand it on untouched (XDP_PASS, TC_ACT_OK); a
//! program that drops or redirects it would do the same to the gateway's
//! other foreign traffic (ARP, IPv6). An IPv4 frame would walk further
//! into the pipeline, but whether one is ours depends on the pool, the
//! inside prefixes and the static maps, which a reload can change under
//! the check.
//!
//! What it costs: the external interface's programs count the frame in
//! `passed_not_ours`, one each, as they count any foreign frame (skipping
//! it would take a test on every packet); the inside interfaces' programs
//! count nothing for it. `xnat trace` never reports it (it traces IPv4
//! only).
use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, OwnedFd},
};

use aya_obj::generated::{bpf_attr, bpf_cmd};

use super::syscall_prog::{sys, sys_fd};

/// IEEE 802 "Local Experimental Ethertype 1": meant for experiments,
/// never IPv4.
pub const ETHERTYPE: u16 = 0x88B5;

/// The self-test frame: minimum Ethernet size, locally administered
/// addresses, [`ETHERTYPE`], a payload that names it (for a capture that
/// somehow sees it; a test run sends nothing anywhere).
pub const FRAME: [u8; 60] = frame();

const fn frame() -> [u8; 60] {
    let mut f = [0u8; 60];
    let dst = [0x02, 0, 0, 0, 0, 0x01];
    let src = [0x02, 0, 0, 0, 0, 0x02];
    let text = *b"xnat self-test";
    let mut i = 0;
    while i < 6 {
        f[i] = dst[i];
        f[6 + i] = src[i];
        i += 1;
    }
    let t = ETHERTYPE.to_be_bytes();
    f[12] = t[0];
    f[13] = t[1];
    let mut i = 0;
    while i < text.len() {
        f[14 + i] = text[i];
        i += 1;
    }
    f
}

/// The hook a program runs at: what "pass" is, and the verdicts' names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Xdp,
    /// TC (TCX links): xnat's programs return the classic TC_ACT_* codes.
    Tc,
}

impl Hook {
    /// XDP_PASS, or TC_ACT_OK (TCX_PASS: the same 0).
    pub fn pass(self) -> u32 {
        match self {
            Hook::Xdp => 2,
            Hook::Tc => 0,
        }
    }

    /// `v` by its name in the kernel's headers, for messages.
    pub fn verdict_name(self, v: u32) -> String {
        let name = match (self, v) {
            (Hook::Xdp, 0) => "XDP_ABORTED",
            (Hook::Xdp, 1) => "XDP_DROP",
            (Hook::Xdp, 2) => "XDP_PASS",
            (Hook::Xdp, 3) => "XDP_TX",
            (Hook::Xdp, 4) => "XDP_REDIRECT",
            (Hook::Tc, u32::MAX) => "TC_ACT_UNSPEC",
            (Hook::Tc, 0) => "TC_ACT_OK",
            (Hook::Tc, 1) => "TC_ACT_RECLASSIFY",
            (Hook::Tc, 2) => "TC_ACT_SHOT",
            (Hook::Tc, 3) => "TC_ACT_PIPE",
            (Hook::Tc, 4) => "TC_ACT_STOLEN",
            (Hook::Tc, 7) => "TC_ACT_REDIRECT",
            _ => return format!("verdict {}", v as i32),
        };
        name.to_string()
    }
}

/// Opens the loaded program `id` (the one a link names).
pub fn program_by_id(id: u32) -> io::Result<OwnedFd> {
    // SAFETY: an all-zero bpf_attr is the kernel's "nothing set".
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.__bindgen_anon_6.__bindgen_anon_1.prog_id = id;
    sys_fd(bpf_cmd::BPF_PROG_GET_FD_BY_ID, &mut attr)
}

/// Runs `frame` once through the program `prog` (XDP or TC) and returns
/// its verdict. Nothing is sent: the kernel runs the program on a copy
/// and throws the result away (no `data_out`).
pub fn run(prog: BorrowedFd<'_>, frame: &[u8]) -> io::Result<u32> {
    // SAFETY: as above.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.test.prog_fd = prog.as_raw_fd() as u32;
    attr.test.data_in = frame.as_ptr() as u64;
    attr.test.data_size_in = frame.len() as u32;
    attr.test.repeat = 1;
    sys(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr)?;
    // SAFETY: the kernel wrote the result into the same member.
    Ok(unsafe { attr.test.retval })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_not_ipv4_and_names_itself() {
        assert_eq!(&FRAME[12..14], &[0x88, 0xB5]);
        assert_ne!(&FRAME[12..14], &0x0800u16.to_be_bytes());
        assert!(FRAME[14..].starts_with(b"xnat self-test"));
    }

    #[test]
    fn verdicts_are_named() {
        assert_eq!(Hook::Xdp.verdict_name(Hook::Xdp.pass()), "XDP_PASS");
        assert_eq!(Hook::Tc.verdict_name(Hook::Tc.pass()), "TC_ACT_OK");
        assert_eq!(Hook::Tc.verdict_name(2), "TC_ACT_SHOT");
        assert_eq!(Hook::Xdp.verdict_name(9), "verdict 9");
    }
}
