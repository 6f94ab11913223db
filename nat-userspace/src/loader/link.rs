//! Forcible detach of a pinned BPF link (BPF_LINK_DETACH).
//!
//! Dropping the last reference to a link detaches it, but while the agent
//! still holds its fd that would wait for the agent to exit. `xnat detach`
//! must take effect at once, so it asks the kernel to detach the link
//! whoever holds it. aya does not expose this command, hence the syscall.
use std::{
    ffi::CString,
    io,
    os::fd::{FromRawFd as _, OwnedFd, RawFd},
    path::Path,
};

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_DETACH: libc::c_long = 34;

/// The part of `union bpf_attr` these two commands use, padded to a size
/// the kernel accepts (it checks that unused trailing bytes are zero).
#[repr(C)]
#[derive(Default)]
struct BpfAttr {
    words: [u64; 16],
}

fn bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, zero-padded bpf_attr of the size we pass.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BpfAttr,
            std::mem::size_of::<BpfAttr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens a pinned BPF object.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut attr = BpfAttr::default();
    // struct { __aligned_u64 pathname; __u32 bpf_fd; __u32 file_flags; }
    attr.words[0] = c.as_ptr() as u64;
    let fd = bpf(BPF_OBJ_GET, &mut attr)? as RawFd;
    // SAFETY: the kernel returned a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Detaches the link pinned at `path` from its hook. A link whose device is
/// already gone reports an error the caller may ignore.
pub fn detach_pinned(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let fd = obj_get(path)?;
    let mut attr = BpfAttr::default();
    // struct { __u32 link_fd; }
    attr.words[0] = fd.as_raw_fd() as u32 as u64;
    bpf(BPF_LINK_DETACH, &mut attr).map(|_| ())
}

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// What the kernel says about a pinned XDP or TCX link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedLinkInfo {
    /// The program the link runs (its id: `BPF_PROG_GET_FD_BY_ID` opens it).
    pub prog_id: u32,
    /// The device it is attached to; 0 once the device is gone or the
    /// link was detached (the link is then defunct).
    pub ifindex: u32,
}

/// Reads the link pinned at `path` (XDP or TCX).
pub fn info_of_pinned(path: &Path) -> io::Result<PinnedLinkInfo> {
    use std::os::fd::AsRawFd as _;
    let fd = obj_get(path)?;
    // struct bpf_link_info: type, id, prog_id, then an 8-byte aligned union
    // whose xdp and tcx members both start with `__u32 ifindex`.
    let mut info = [0u32; 32];
    let mut attr = BpfAttr::default();
    // struct { __u32 bpf_fd; __u32 info_len; __aligned_u64 info; }
    attr.words[0] = (fd.as_raw_fd() as u32 as u64) | ((std::mem::size_of_val(&info) as u64) << 32);
    attr.words[1] = info.as_mut_ptr() as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(PinnedLinkInfo {
        prog_id: info[2],
        ifindex: info[4],
    })
}

/// The interface index a pinned XDP or TCX link is attached to; 0 once its
/// device is gone (the link is then defunct).
pub fn ifindex_of_pinned(path: &Path) -> io::Result<u32> {
    info_of_pinned(path).map(|i| i.ifindex)
}
