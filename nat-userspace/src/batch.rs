//! Batched map operations (BPF_MAP_LOOKUP_BATCH / BPF_MAP_DELETE_BATCH).
//!
//! The expiry sweep reads whole tables; one syscall per thousands of
//! entries instead of two per entry is what keeps a sweep of a million
//! bindings cheap. aya 0.14 does not wrap these commands, hence the raw
//! syscall.
use std::{io, mem::size_of, os::fd::RawFd};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
/// Entries per syscall.
const CHUNK: usize = 4096;

/// `union bpf_attr` as used by the batch commands, zero-padded.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
    _pad: [u64; 8],
}

fn sys(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: attr is a valid, zero-padded bpf_attr whose pointers refer to
    // buffers that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            size_of::<BatchAttr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads every entry of the hash map `fd` whose keys are `K` and values `V`
/// (both `#[repr(C)]` plain data). Entries changing during the walk may be
/// seen in either state, like any map iteration.
pub fn lookup_all<K: Copy + Default, V: Copy + Default>(fd: RawFd) -> io::Result<Vec<(K, V)>> {
    let mut out = Vec::new();
    let mut keys = vec![K::default(); CHUNK];
    let mut values = vec![V::default(); CHUNK];
    // The resume token of hash maps is a bucket index (u32); give it room.
    let mut token_in = [0u8; 64];
    let mut token_out = [0u8; 64];
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                token_in.as_mut_ptr() as u64
            },
            out_batch: token_out.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: fd as u32,
            ..Default::default()
        };
        let res = sys(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let n = attr.count as usize;
        for i in 0..n.min(CHUNK) {
            out.push((keys[i], values[i]));
        }
        match res {
            Ok(()) => {}
            // ENOENT: the walk is complete (the last chunk may hold entries).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Err(e) => return Err(e),
        }
        token_in = token_out;
        first = false;
    }
}

/// Deletes `keys` from the map `fd`. Keys already gone are skipped (a
/// concurrent delete, e.g. by `xnat flows flush`, is not an error).
pub fn delete<K: Copy>(fd: RawFd, keys: &[K]) -> io::Result<usize> {
    let mut deleted = 0;
    let mut rest = keys;
    while !rest.is_empty() {
        let n = rest.len().min(CHUNK);
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            count: n as u32,
            map_fd: fd as u32,
            ..Default::default()
        };
        match sys(BPF_MAP_DELETE_BATCH, &mut attr) {
            Ok(()) => {
                deleted += attr.count as usize;
                rest = &rest[n..];
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // attr.count entries were deleted before the missing key;
                // skip that key and go on.
                let done = attr.count as usize;
                deleted += done;
                rest = &rest[(done + 1).min(rest.len())..];
            }
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Writes `keys[i] -> values[i]` into the map `fd` (create or replace), in
/// chunks. `K` and `V` must be the map's exact key and value layouts.
pub fn update_all<K: Copy, V: Copy>(fd: RawFd, keys: &[K], values: &[V]) -> io::Result<()> {
    assert_eq!(keys.len(), values.len(), "one value per key");
    let mut done = 0;
    while done < keys.len() {
        let n = (keys.len() - done).min(CHUNK);
        let mut attr = BatchAttr {
            keys: keys[done..].as_ptr() as u64,
            values: values[done..].as_ptr() as u64,
            count: n as u32,
            map_fd: fd as u32,
            ..Default::default()
        };
        sys(BPF_MAP_UPDATE_BATCH, &mut attr)?;
        done += n;
    }
    Ok(())
}

/// BPF_MAP_UPDATE_ELEM of one entry (any flags: create or replace), for
/// callers that hold a raw map fd rather than a typed aya map.
pub fn update<K: Copy, V: Copy>(fd: RawFd, key: &K, value: &V) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
        _rest: [u64; 8],
    }
    let mut attr = Attr {
        map_fd: fd as u32,
        _pad: 0,
        key: key as *const K as u64,
        value: value as *const V as u64,
        flags: 0,
        _rest: [0; 8],
    };
    // SAFETY: valid bpf_attr for BPF_MAP_UPDATE_ELEM (2) with live pointers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            2 as libc::c_long,
            &mut attr as *mut Attr,
            size_of::<Attr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
