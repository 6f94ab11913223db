//! One function of xnat's object loaded as a `BPF_PROG_TYPE_SYSCALL`
//! program, which aya 0.14 cannot load (its loader knows no `syscall`
//! section). The expiry walk needs the type: a syscall program's test run
//! executes in the caller's process context with bottom halves on, so the
//! CPU that runs a long walk goes on handling packets meanwhile (XDP, TC
//! and the stack run in softirqs), where a TC program's test run keeps
//! them off for the whole walk.
//!
//! The function is parsed and linked by aya's own object crate (aya-obj,
//! the code `Ebpf::load` uses): its map references point at the maps
//! pinned in the directory, its calls are linked, and the object's BTF is
//! loaded for the callback's function info (the verifier requires it for
//! `bpf_for_each_map_elem`). Only the last step, BPF_PROG_LOAD with the
//! syscall type, is done here.
use std::{
    collections::HashSet,
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
    path::Path,
};

use anyhow::{Context as _, bail};
use aya_obj::{
    Object,
    generated::{bpf_attr, bpf_cmd, bpf_prog_type},
};

/// `BPF_F_SLEEPABLE`: the kernel accepts syscall programs only as
/// sleepable ones.
const BPF_F_SLEEPABLE: u32 = 1 << 4;
/// Verifier log on failure: enough for a walk's few hundred instructions.
const LOG_SIZE: usize = 1 << 20;

/// Loads `name` from `object` as a syscall program whose maps are the ones
/// `map_fd` gives by name (maps it does not give must not be used by the
/// function; the kernel rejects the load if they are).
pub fn load(
    object: &[u8],
    name: &str,
    map_fd: impl Fn(&str) -> Option<RawFd>,
) -> anyhow::Result<OwnedFd> {
    let mut obj = Object::parse(object).context("parsing the BPF object")?;
    let btf_fd = load_btf(&mut obj)?;
    let maps = obj.maps.clone();
    // Maps the function does not use are relocated to an invalid fd: the
    // linker relocates every function of the object, the kernel only the
    // ones it is given.
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    obj.relocate_maps(
        maps.iter()
            .map(|(map, m)| (map.as_str(), map_fd(map).unwrap_or(-1), m)),
        &text_sections,
    )
    .context("relocating map references")?;
    obj.relocate_calls(&text_sections)
        .context("linking function calls")?;
    let program = obj
        .programs
        .get(name)
        .with_context(|| format!("program {name} missing from the object"))?;
    let function = obj
        .functions
        .get(&program.function_key())
        .with_context(|| format!("program {name} has no code"))?;

    let func_info = function.func_info.func_info_bytes();
    let line_info = function.line_info.line_info_bytes();
    let mut log = vec![0u8; LOG_SIZE];
    // SAFETY: an all-zero bpf_attr is the kernel's "nothing set".
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: the prog-load member of the union; every pointer set here
    // outlives the syscall below.
    let load = unsafe { &mut attr.__bindgen_anon_3 };
    load.prog_type = bpf_prog_type::BPF_PROG_TYPE_SYSCALL as u32;
    load.prog_flags = BPF_F_SLEEPABLE;
    load.insns = function.instructions.as_ptr() as u64;
    load.insn_cnt = function.instructions.len() as u32;
    load.license = program.license.as_ptr() as u64;
    for (dst, src) in load.prog_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    if let Some(btf) = &btf_fd {
        load.prog_btf_fd = btf.as_raw_fd() as u32;
        if function.func_info_rec_size > 0 {
            load.func_info = func_info.as_ptr() as u64;
            load.func_info_cnt = function.func_info.func_info.len() as u32;
            load.func_info_rec_size = function.func_info_rec_size as u32;
        }
        if function.line_info_rec_size > 0 {
            load.line_info = line_info.as_ptr() as u64;
            load.line_info_cnt = function.line_info.line_info.len() as u32;
            load.line_info_rec_size = function.line_info_rec_size as u32;
        }
    }
    load.log_level = 1;
    load.log_buf = log.as_mut_ptr() as u64;
    load.log_size = log.len() as u32;
    sys_fd(bpf_cmd::BPF_PROG_LOAD, &mut attr).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let verifier = String::from_utf8_lossy(&log[..end]);
        let tail: Vec<&str> = verifier.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        anyhow::anyhow!(
            "loading {name} as a syscall program: {e}\nverifier: {}",
            tail.join("\n")
        )
    })
}

/// The object's BTF, fixed up for this kernel as aya does it and loaded;
/// `None` where the object has none.
fn load_btf(obj: &mut Object) -> anyhow::Result<Option<OwnedFd>> {
    let Some(features) = aya::features().btf() else {
        bail!("this kernel has no BTF support; the expiry walk needs it");
    };
    let Some(btf) = obj
        .fixup_and_sanitize_btf(features)
        .context("fixing up the object's BTF")?
    else {
        return Ok(None);
    };
    let raw = btf.to_bytes();
    // SAFETY: as above.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: the BTF-load member; `raw` outlives the syscall.
    let u = unsafe { &mut attr.__bindgen_anon_7 };
    u.btf = raw.as_ptr() as u64;
    u.btf_size = raw.len() as u32;
    sys_fd(bpf_cmd::BPF_BTF_LOAD, &mut attr)
        .map(Some)
        .context("loading the object's BTF")
}

/// Pins the program `fd` at `path`.
pub fn pin(fd: BorrowedFd<'_>, path: &Path) -> anyhow::Result<()> {
    let c = path_cstring(path)?;
    // SAFETY: as above.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: the object-pin member; `c` outlives the syscall.
    let u = unsafe { &mut attr.__bindgen_anon_4 };
    u.pathname = c.as_ptr() as u64;
    u.bpf_fd = fd.as_raw_fd() as u32;
    sys(bpf_cmd::BPF_OBJ_PIN, &mut attr).with_context(|| format!("pinning {}", path.display()))?;
    Ok(())
}

/// Runs the syscall program `fd` once (no context) and returns what it
/// returned.
pub fn run(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: as above.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.test.prog_fd = fd.as_raw_fd() as u32;
    sys(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr)?;
    // SAFETY: the kernel wrote the result into the same member.
    Ok(unsafe { attr.test.retval })
}

fn path_cstring(path: &Path) -> anyhow::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("{} contains a NUL byte", path.display()))
}

pub(crate) fn sys(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid bpf_attr of its full size for `cmd`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub(crate) fn sys_fd(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    let fd = sys(cmd, attr)?;
    // SAFETY: these commands return a new file descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
