//! Pinned maps named and shaped like an attachment's NAPT binding tables
//! (SESSIONS, NAPT_OUT, NAPT_IN, FILTER, HOST_PORTS, INBOUND_SESSIONS,
//! HOST_POOL) and those the sweep reads beside them (NAT64_IDS,
//! NAT64_HOSTS, STATIC_OUT), with no
//! programs: for tests of the user-space code that works on those tables
//! (the agent's expiry sweep, `xnat flows flush`), which write the entries
//! they need directly. Root only (it creates BPF maps).
use std::{
    ffi::CString,
    fs,
    mem::size_of,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use nat_common::{
    EndpointKey, FilterKey, InsideEndpoint, MAP_FILTER, MAP_HOST_POOL, MAP_HOST_PORTS,
    MAP_INBOUND_SESSIONS, MAP_NAPT_IN, MAP_NAPT_OUT, MAP_SESSIONS, MAP_STATIC_OUT, Mapping,
    Session, SessionKey,
    nat64::{MAP_NAT64, MAP_NAT64_HOSTS, MAP_NAT64_IDS, Nat64Config, Nat64Host},
};
use nat_userspace::tables::batch;

/// The tables in the order [`Tables::fd`] keeps their fds.
const NAMES: [&str; 11] = [
    MAP_SESSIONS,
    MAP_NAPT_OUT,
    MAP_NAPT_IN,
    MAP_FILTER,
    MAP_HOST_PORTS,
    MAP_INBOUND_SESSIONS,
    MAP_HOST_POOL,
    MAP_NAT64_IDS,
    MAP_NAT64_HOSTS,
    MAP_STATIC_OUT,
    MAP_NAT64,
];

/// BPF map types.
const HASH: u64 = 1;
const ARRAY: u64 = 2;

fn sys(cmd: libc::c_long, attr: &mut [u64; 16]) -> i64 {
    // SAFETY: attr is a zeroed, large enough bpf_attr for `cmd` whose
    // pointers (if any) refer to live buffers.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            size_of::<[u64; 16]>(),
        )
    }
}

/// A directory of pinned binding tables of its own; removed on drop.
pub struct Tables {
    dir: PathBuf,
    fds: Vec<i32>,
}

impl Tables {
    /// Tables of `capacity` entries each (HOST_PORTS: 1024), pinned under
    /// `/sys/fs/bpf/xnat-TAG-PID-N` (N: one per call, so tests running in
    /// parallel threads never share them).
    pub fn new(tag: &str, capacity: u32) -> Self {
        let mut t = Self::empty(tag);
        // SESSIONS, FILTER and HOST_PORTS BPF_F_NO_PREALLOC, as in the
        // programs.
        t.create(
            MAP_SESSIONS,
            size_of::<SessionKey>(),
            size_of::<Session>(),
            capacity,
            1,
        );
        t.create(
            MAP_NAPT_OUT,
            size_of::<EndpointKey>(),
            size_of::<Mapping>(),
            capacity,
            0,
        );
        t.create(
            MAP_NAPT_IN,
            size_of::<EndpointKey>(),
            size_of::<InsideEndpoint>(),
            capacity,
            0,
        );
        t.create(MAP_FILTER, size_of::<FilterKey>(), 8, capacity, 1);
        t.create(MAP_HOST_PORTS, 4, 8, 1024, 1);
        t.create_typed(MAP_INBOUND_SESSIONS, ARRAY, 4, 8, 1, 0);
        t.create(MAP_HOST_POOL, 4, 4, 1024, 1);
        t.create(MAP_NAT64_IDS, 4, size_of::<Nat64Host>(), 1024, 1);
        t.create(MAP_NAT64_HOSTS, 16, 4, 1024, 1);
        t.create(MAP_STATIC_OUT, 4, 4, 1024, 0);
        // NAT64's configuration (off: zeroed), for its host prefix.
        t.create_typed(MAP_NAT64, ARRAY, 4, size_of::<Nat64Config>(), 1, 0);
        t
    }

    /// An empty directory of its own under /sys/fs/bpf.
    fn empty(tag: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "needs root (BPF maps)");
        nat_userspace::tables::bpffs::ensure_mounted().expect("bpffs");
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/xnat-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Tables {
            dir,
            fds: Vec::new(),
        }
    }

    /// The binding tables of xnat's own object (every map of it pinned
    /// under a directory of its own, as `Tables::new` names them), with
    /// `capacity` mappings and sessions, and the expiry walk
    /// (`xnat_expire`) pinned beside them: the sweep walks the mappings in
    /// the kernel where it can.
    pub fn with_kernel_walk(tag: &str, capacity: u32) -> Self {
        let mut t = Self::empty(tag);
        let limits = nat_userspace::loader::Limits {
            max_mappings: capacity,
            max_sessions: capacity,
        };
        let _ebpf = nat_userspace::tables::loader(&t.dir, limits)
            .load(nat_userspace::ebpf_object())
            .expect("loading xnat's object");
        nat_userspace::loader::pin_expiry_walk(&t.dir).expect("pinning the walk");
        for name in NAMES {
            let path = CString::new(t.dir.join(name).to_str().unwrap()).unwrap();
            let mut attr = [0u64; 16];
            attr[0] = path.as_ptr() as u64;
            let fd = sys(7, &mut attr); // BPF_OBJ_GET
            assert!(
                fd >= 0,
                "opening {name}: {}",
                std::io::Error::last_os_error()
            );
            t.fds.push(fd as i32);
        }
        t
    }

    fn create(&mut self, name: &str, key: usize, value: usize, entries: u32, flags: u32) {
        self.create_typed(name, HASH, key, value, entries, flags)
    }

    fn create_typed(
        &mut self,
        name: &str,
        map_type: u64,
        key: usize,
        value: usize,
        entries: u32,
        flags: u32,
    ) {
        let mut attr = [0u64; 16];
        // map_type, key_size, value_size, max_entries, map_flags.
        attr[0] = map_type | (key as u64) << 32;
        attr[1] = value as u64 | (entries as u64) << 32;
        attr[2] = flags as u64;
        let fd = sys(0, &mut attr);
        assert!(
            fd >= 0,
            "creating {name}: {}",
            std::io::Error::last_os_error()
        );
        let path = CString::new(self.dir.join(name).to_str().unwrap()).unwrap();
        let mut attr = [0u64; 16];
        attr[0] = path.as_ptr() as u64;
        attr[1] = fd as u64;
        assert_eq!(sys(6, &mut attr), 0, "pinning {name}"); // BPF_OBJ_PIN
        self.fds.push(fd as i32);
    }

    /// The fd of table `name` (one of the `MAP_*` names above).
    pub fn fd(&self, name: &str) -> i32 {
        let i = NAMES.iter().position(|n| *n == name).unwrap();
        self.fds[i]
    }

    /// Writes `k -> v` into table `name` (create or replace).
    pub fn put<K: Copy, V: Copy>(&self, name: &str, k: K, v: V) {
        batch::update(self.fd(name), &k, &v).unwrap();
    }

    /// The value of `k` in table `name`, if any.
    pub fn get<K: Copy, V: Copy + Default>(&self, name: &str, k: K) -> Option<V> {
        batch::lookup(self.fd(name), &k).unwrap()
    }

    /// Deletes `k` from table `name` (if there).
    pub fn remove<K: Copy>(&self, name: &str, k: K) {
        batch::delete(self.fd(name), &[k]).unwrap();
    }

    /// Every entry of table `name`.
    pub fn entries<K: Copy + Default, V: Copy + Default>(&self, name: &str) -> Vec<(K, V)> {
        batch::lookup_all::<K, V>(self.fd(name)).unwrap()
    }

    /// The pin directory, as the sweeper and the flush open it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        for fd in &self.fds {
            // SAFETY: our own fds.
            unsafe { libc::close(*fd) };
        }
    }
}
