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
/// Entries per syscall (updates and deletes).
const CHUNK: usize = 4096;
/// Entries per lookup syscall: the kernel copies whole buckets per call,
/// so fewer, larger calls cost less (a hash table's walk is ~300 ns per
/// non-empty bucket whatever the chunk).
const LOOKUP_CHUNK: usize = 16384;

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
/// BPF_OBJ_GET_INFO_BY_FD's `struct bpf_map_info`, as far as we read it.
#[repr(C)]
#[derive(Default)]
struct MapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    _rest: [u64; 16],
}

/// Refuses a map whose key or value size is not `K`'s or `V`'s: the kernel
/// would write (or read) its own sizes through our buffers.
fn check_layout<K, V>(fd: RawFd) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
        _rest: [u64; 8],
    }
    let mut info = MapInfo::default();
    let mut attr = Attr {
        bpf_fd: fd as u32,
        info_len: size_of::<MapInfo>() as u32,
        info: &mut info as *mut MapInfo as u64,
        _rest: [0; 8],
    };
    // SAFETY: valid bpf_attr for BPF_OBJ_GET_INFO_BY_FD (15); the kernel
    // writes at most info_len bytes into `info`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            15 as libc::c_long,
            &mut attr as *mut Attr,
            size_of::<Attr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if info.key_size as usize != size_of::<K>() || info.value_size as usize != size_of::<V>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "map has {}-byte keys and {}-byte values, expected {} and {} (pinned by another xnat version?)",
                info.key_size,
                info.value_size,
                size_of::<K>(),
                size_of::<V>()
            ),
        ));
    }
    Ok(())
}

pub fn lookup_all<K: Copy + Default, V: Copy + Default>(fd: RawFd) -> io::Result<Vec<(K, V)>> {
    let (keys, values) = lookup_all_split::<K, V>(fd)?;
    Ok(keys.into_iter().zip(values).collect())
}

/// [`lookup_all`] as two parallel vectors (`keys[i]` → `values[i]`): the
/// kernel writes straight into them, with no per-entry copy or pairing.
pub fn lookup_all_split<K: Copy + Default, V: Copy + Default>(
    fd: RawFd,
) -> io::Result<(Vec<K>, Vec<V>)> {
    let mut keys: Vec<K> = Vec::new();
    let mut values: Vec<V> = Vec::new();
    lookup_chunks::<K, V>(fd, LOOKUP_CHUNK, |k, v| {
        keys.extend_from_slice(k);
        values.extend_from_slice(v);
        Ok(())
    })?;
    Ok((keys, values))
}

/// Walks the hash map `fd` in chunks of up to `chunk` entries (whole
/// buckets; at least one bucket's worth), calling `f` with each chunk's
/// keys and values. `f` may delete entries of the chunk it was given (the
/// walk resumes at the next bucket): deleting right after reading finds
/// the buckets and elements still in the CPU caches, which halves the
/// kernel's cost of a delete in a large table.
pub fn lookup_chunks<K: Copy + Default, V: Copy + Default>(
    fd: RawFd,
    mut chunk: usize,
    mut f: impl FnMut(&[K], &[V]) -> io::Result<()>,
) -> io::Result<()> {
    check_layout::<K, V>(fd)?;
    let mut keys = vec![K::default(); chunk];
    let mut values = vec![V::default(); chunk];
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
            count: chunk as u32,
            map_fd: fd as u32,
            ..Default::default()
        };
        let res = sys(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let n = (attr.count as usize).min(chunk);
        match res {
            Ok(()) => f(&keys[..n], &values[..n])?,
            // ENOENT: the walk is complete (the last chunk may hold entries).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return f(&keys[..n], &values[..n]),
            // ENOSPC: the next bucket holds more than `chunk` entries;
            // retry it with more room.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && n == 0 => {
                chunk *= 2;
                keys.resize(chunk, K::default());
                values.resize(chunk, V::default());
                continue;
            }
            Err(e) => return Err(e),
        }
        token_in = token_out;
        first = false;
    }
}

/// Deletes `keys` from the map `fd`. Keys already gone are skipped (a
/// concurrent delete, e.g. by `xnat flows flush`, is not an error).
pub fn delete<K: Copy>(fd: RawFd, keys: &[K]) -> io::Result<usize> {
    delete_noting_missing(fd, keys, |_| {})
}

/// [`delete`], calling `missing(i)` for each `keys[i]` that was already
/// gone: whoever deleted it first is the one to clean up after it.
pub fn delete_noting_missing<K: Copy>(
    fd: RawFd,
    keys: &[K],
    mut missing: impl FnMut(usize),
) -> io::Result<usize> {
    let mut deleted = 0;
    let mut at = 0;
    while at < keys.len() {
        let n = (keys.len() - at).min(CHUNK);
        let mut attr = BatchAttr {
            keys: keys[at..].as_ptr() as u64,
            count: n as u32,
            map_fd: fd as u32,
            ..Default::default()
        };
        match sys(BPF_MAP_DELETE_BATCH, &mut attr) {
            Ok(()) => {
                deleted += attr.count as usize;
                at += n;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // attr.count entries were deleted before the missing key;
                // skip that key and go on.
                let done = attr.count as usize;
                deleted += done;
                missing(at + done);
                at += done + 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// The value of `key` in the map `fd` now, if it is there. `V` must be the
/// map's exact value layout.
pub fn lookup<K: Copy, V: Copy + Default>(fd: RawFd, key: &K) -> io::Result<Option<V>> {
    check_layout::<K, V>(fd)?;
    lookup_unchecked(fd, key)
}

/// Whether any of `keys` is in the map `fd` (one layout check, then a
/// lookup per key until one is found).
pub fn any_present<K: Copy, V: Copy + Default>(
    fd: RawFd,
    keys: impl IntoIterator<Item = K>,
) -> io::Result<bool> {
    check_layout::<K, V>(fd)?;
    for k in keys {
        if lookup_unchecked::<K, V>(fd, &k)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// [`lookup`] for callers that checked the layout already.
fn lookup_unchecked<K: Copy, V: Copy + Default>(fd: RawFd, key: &K) -> io::Result<Option<V>> {
    let mut value = V::default();
    match elem(BPF_MAP_LOOKUP_ELEM, fd, key, &mut value as *mut V as u64, 0) {
        Ok(()) => Ok(Some(value)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// For each `(key, value as the caller read it)` of `entries`: reads the
/// current value and deletes the key only if `unchanged(read, current)`.
/// Returns the indices of the entries it deleted (not those gone already
/// or changed meanwhile).
/// A key deleted and remade by someone else since the caller's read holds
/// someone else's entry now, which a blind delete would take away; the
/// re-read narrows the window in which that can still happen to the two
/// syscalls between it and the delete (the kernel has no compare-and-delete).
pub fn delete_unchanged<K: Copy, V: Copy + Default>(
    fd: RawFd,
    entries: &[(K, V)],
    mut unchanged: impl FnMut(&V, &V) -> bool,
) -> io::Result<Vec<usize>> {
    let mut deleted = Vec::new();
    if entries.is_empty() {
        return Ok(deleted);
    }
    check_layout::<K, V>(fd)?;
    for (i, (k, read)) in entries.iter().enumerate() {
        let Some(current) = lookup_unchecked::<K, V>(fd, k)? else {
            continue;
        };
        if !unchanged(read, &current) {
            continue;
        }
        match elem(BPF_MAP_DELETE_ELEM, fd, k, 0, 0) {
            Ok(()) => deleted.push(i),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Writes `keys[i] -> values[i]` into the map `fd` (create or replace), in
/// chunks. `K` and `V` must be the map's exact key and value layouts.
pub fn update_all<K: Copy, V: Copy>(fd: RawFd, keys: &[K], values: &[V]) -> io::Result<()> {
    assert_eq!(keys.len(), values.len(), "one value per key");
    check_layout::<K, V>(fd)?;
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

/// For each `(key, value as the caller read it)` of `entries` whose key is
/// still in the map `fd`: reads the current value and, if
/// `change(read, current)` returns a new one, writes that in place
/// (`BPF_EXIST`: never recreating a key deleted meanwhile). Returns how
/// many were replaced.
/// One lookup and one update per key (`BPF_MAP_UPDATE_BATCH` takes no
/// `BPF_EXIST`); callers change few entries. Reading right before writing
/// keeps the window in which a concurrent writer's change is lost to two
/// syscalls.
pub fn replace_existing<K: Copy, V: Copy + Default>(
    fd: RawFd,
    entries: &[(K, V)],
    mut change: impl FnMut(&V, &V) -> Option<V>,
) -> io::Result<usize> {
    const BPF_EXIST: u64 = 2;
    if entries.is_empty() {
        return Ok(0);
    }
    check_layout::<K, V>(fd)?;
    let mut replaced = 0;
    for (k, read) in entries {
        let Some(current) = lookup_unchecked::<K, V>(fd, k)? else {
            continue;
        };
        let Some(new) = change(read, &current) else {
            continue;
        };
        match elem(
            BPF_MAP_UPDATE_ELEM,
            fd,
            k,
            &new as *const V as u64,
            BPF_EXIST,
        ) {
            Ok(()) => replaced += 1,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(replaced)
}

/// BPF_MAP_UPDATE_ELEM of one entry (any flags: create or replace), for
/// callers that hold a raw map fd rather than a typed aya map.
pub fn update<K: Copy, V: Copy>(fd: RawFd, key: &K, value: &V) -> io::Result<()> {
    check_layout::<K, V>(fd)?;
    elem(BPF_MAP_UPDATE_ELEM, fd, key, value as *const V as u64, 0)
}

/// BPF_MAP_UPDATE_ELEM with BPF_NOEXIST: inserts `key` only if it is not
/// there. `Ok(false)`: it was.
pub fn insert_new<K: Copy, V: Copy>(fd: RawFd, key: &K, value: &V) -> io::Result<bool> {
    check_layout::<K, V>(fd)?;
    match elem(BPF_MAP_UPDATE_ELEM, fd, key, value as *const V as u64, 1) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;

/// A single-element command (`cmd`: lookup, update or delete) on `key`,
/// with the value buffer at `value` (0 for a delete); the caller checked
/// the layout.
fn elem<K: Copy>(cmd: libc::c_long, fd: RawFd, key: &K, value: u64, flags: u64) -> io::Result<()> {
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
        value,
        flags,
        _rest: [0; 8],
    };
    // SAFETY: valid bpf_attr for BPF_MAP_LOOKUP_ELEM / BPF_MAP_UPDATE_ELEM /
    // BPF_MAP_DELETE_ELEM with live pointers (no value for a delete); the
    // value buffer holds the map's value size (the callers checked the
    // layout).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
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
