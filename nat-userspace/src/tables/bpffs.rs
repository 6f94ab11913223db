//! Making sure a BPF filesystem is mounted where the pins live.
use std::{ffi::CString, path::Path};

use anyhow::{Context as _, bail};

/// Where bpffs is conventionally mounted.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Whether `path` is on a bpffs.
pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Mounts bpffs at /sys/fs/bpf if nothing is mounted there yet (as bpftool
/// does), saying so on stderr. Returns whether it mounted.
pub fn ensure_mounted() -> anyhow::Result<bool> {
    let root = Path::new(BPFFS_ROOT);
    if is_bpffs(root) {
        return Ok(false);
    }
    std::fs::create_dir_all(root).with_context(|| format!("creating {BPFFS_ROOT}"))?;
    let src = CString::new("bpf").expect("static string");
    let target = CString::new(BPFFS_ROOT).expect("static string");
    let opts = CString::new("mode=0700").expect("static string");
    // SAFETY: all pointers are valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        bail!("bpffs is not mounted at {BPFFS_ROOT} and mounting it failed: {err}");
    }
    tracing::info!("mounted bpffs at {BPFFS_ROOT}");
    Ok(true)
}
