//! The expiry sweep's rules, table by table (root: it creates BPF maps).
//!
//! The agent's `Sweeper` runs on plain hash maps with the binding tables'
//! key and value layouts, pinned in a directory of their own, filled with
//! bindings in every state the rules tell apart, with more entries than
//! one sweep chunk so chunk boundaries are crossed. The sweep runs at a
//! chosen time; every table is then compared with what must be left.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::CString,
    fs,
    mem::size_of,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use nat_common::{
    EndpointKey, FILTER_ADDRESS, FilterKey, MAP_FILTER, MAP_HOST_PORTS, MAP_NAPT_IN, MAP_NAPT_OUT,
    MAP_SESSIONS, MAPPING_FORWARD, Mapping, NatConfig, Session, SessionKey, TCP_ACK_IN,
    TCP_ACK_OUT, TCP_SYN_IN, TCP_SYN_OUT,
};
use nat_userspace::{batch, expiry::Sweeper};

const S: u64 = 1_000_000_000;
const UDP: u8 = 17;
const TCP: u8 = 6;
/// Bulk UDP bindings: more than one sweep chunk (4096 entries).
const BULK: u32 = 6000;
/// Inside hosts the bulk bindings are spread over.
const HOSTS: u32 = 50;

fn be(a: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(a.octets())
}

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

/// A directory of pinned hash maps named and shaped like an attachment's
/// binding tables; removed on drop.
struct Tables {
    dir: PathBuf,
    fds: Vec<i32>,
}

impl Tables {
    fn new() -> Self {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "needs root (BPF maps)");
        nat_userspace::bpffs::ensure_mounted().expect("bpffs");
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/xnat-sweep-rules-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut t = Tables {
            dir,
            fds: Vec::new(),
        };
        let n = 2 * BULK + 64;
        t.create(
            MAP_SESSIONS,
            size_of::<SessionKey>(),
            size_of::<Session>(),
            n,
            0,
        );
        t.create(
            MAP_NAPT_OUT,
            size_of::<EndpointKey>(),
            size_of::<Mapping>(),
            n,
            0,
        );
        t.create(
            MAP_NAPT_IN,
            size_of::<EndpointKey>(),
            size_of::<Mapping>(),
            n,
            0,
        );
        t.create(MAP_FILTER, size_of::<FilterKey>(), 8, n, 0);
        // BPF_F_NO_PREALLOC, as in the programs.
        t.create(MAP_HOST_PORTS, 4, 8, 1024, 1);
        t
    }

    fn create(&mut self, name: &str, key: usize, value: usize, entries: u32, flags: u32) {
        let mut attr = [0u64; 16];
        // map_type (HASH = 1), key_size, value_size, max_entries, map_flags.
        attr[0] = 1 | (key as u64) << 32;
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

    fn fd(&self, name: &str) -> i32 {
        let i = [
            MAP_SESSIONS,
            MAP_NAPT_OUT,
            MAP_NAPT_IN,
            MAP_FILTER,
            MAP_HOST_PORTS,
        ]
        .iter()
        .position(|n| *n == name)
        .unwrap();
        self.fds[i]
    }

    fn put<K: Copy, V: Copy>(&self, name: &str, k: K, v: V) {
        batch::update(self.fd(name), &k, &v).unwrap();
    }

    fn keys<K: Copy + Default + Ord, V: Copy + Default>(&self, name: &str) -> BTreeSet<K> {
        batch::lookup_all::<K, V>(self.fd(name))
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    fn dir(&self) -> &Path {
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

fn config() -> NatConfig {
    NatConfig {
        pool_len: 1,
        filtering: FILTER_ADDRESS,
        port_min: 1024,
        port_max: 65535,
        max_ports_per_host: 100,
        timeout_udp: 300,
        timeout_tcp_established: 7440,
        timeout_tcp_transitory: 240,
        timeout_icmp: 60,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Ep(u32, u16, u8);

fn ek(e: Ep) -> EndpointKey {
    EndpointKey {
        addr: e.0,
        port: e.1.to_be(),
        proto: e.2,
        _pad: 0,
    }
}

/// The whole state of one binding, to write and to expect.
struct Binding {
    inside: Ep,
    public: Ep,
    mapping_seen: u64,
    flags: u16,
    /// (remote address, remote port, last seen, TCP bits).
    sessions: Vec<(u32, u16, u64, u8)>,
    /// (remote address, last seen).
    filters: Vec<(u32, u64)>,
}

impl Binding {
    fn write(&self, t: &Tables) {
        let m = |to: Ep| Mapping {
            addr: to.0,
            port: to.1.to_be(),
            flags: self.flags,
            created: self.mapping_seen,
            last_seen: self.mapping_seen,
        };
        t.put(MAP_NAPT_OUT, ek(self.inside), m(self.public));
        t.put(MAP_NAPT_IN, ek(self.public), m(self.inside));
        for &(ra, rp, seen, tcp) in &self.sessions {
            t.put(
                MAP_SESSIONS,
                self.session_key(ra, rp),
                self.session(seen, tcp),
            );
        }
        for &(ra, seen) in &self.filters {
            t.put(MAP_FILTER, self.filter_key(ra), seen);
        }
    }

    fn session_key(&self, ra: u32, rp: u16) -> SessionKey {
        SessionKey {
            inside_addr: self.inside.0,
            remote_addr: ra,
            inside_port: self.inside.1.to_be(),
            remote_port: rp.to_be(),
            proto: self.inside.2,
            _pad: [0; 3],
        }
    }

    fn session(&self, seen: u64, tcp: u8) -> Session {
        Session {
            created: seen,
            last_seen: seen,
            public_addr: self.public.0,
            public_port: self.public.1.to_be(),
            tcp,
            ..Default::default()
        }
    }

    fn filter_key(&self, ra: u32) -> FilterKey {
        FilterKey {
            public_addr: self.public.0,
            remote_addr: ra,
            public_port: self.public.1.to_be(),
            proto: self.inside.2,
            _pad: 0,
        }
    }
}

// Ord for the key types, so the tables compare as sorted sets.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct SK([u8; 16]);
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct EK([u8; 8]);
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct FK([u8; 12]);

fn bytes<T: Copy, const N: usize>(v: T) -> [u8; N] {
    assert_eq!(size_of::<T>(), N);
    // SAFETY: T is a #[repr(C)] plain-data map key of exactly N bytes with
    // explicit padding.
    unsafe { std::mem::transmute_copy(&v) }
}

#[test]
fn sweep_applies_every_rule_across_chunks() {
    let t = Tables::new();
    let now = 100_000 * S;
    let fresh = now - 10 * S;
    let old = now - 1000 * S; // past UDP (300) and TCP transitory (240)
    let pool = be(Ipv4Addr::new(198, 51, 100, 1));
    let remote = |i: u32| be(Ipv4Addr::new(203, 0, 113, (i % 200) as u8 + 1));
    let host = |i: u32| be(Ipv4Addr::new(10, 1, 0, (i % HOSTS) as u8 + 1));

    // (binding, what must stay: mapping, sessions, filters)
    let mut all: Vec<(Binding, bool, Vec<bool>, Vec<bool>)> = Vec::new();
    for k in 0..BULK {
        // Even: in use. Odd: idle past the UDP timeout everywhere.
        let seen = if k % 2 == 0 { fresh } else { old };
        let live = k % 2 == 0;
        all.push((
            Binding {
                inside: Ep(host(k), 20000 + (k / HOSTS) as u16, UDP),
                public: Ep(pool, 1024 + k as u16, UDP),
                mapping_seen: seen,
                flags: 0,
                sessions: vec![(remote(k), 53, seen, 0)],
                filters: vec![(remote(k), seen)],
            },
            live,
            vec![live],
            vec![live],
        ));
    }
    let h = be(Ipv4Addr::new(10, 2, 0, 1));
    let established = TCP_SYN_OUT | TCP_SYN_IN | TCP_ACK_OUT | TCP_ACK_IN;
    let (r1, r2, r3) = (remote(7), remote(8), remote(9));
    // A port forward: never expires, however idle; its idle filter entry
    // with no session goes.
    all.push((
        Binding {
            inside: Ep(h, 80, TCP),
            public: Ep(pool, 8080, TCP),
            mapping_seen: old,
            flags: MAPPING_FORWARD,
            sessions: vec![],
            filters: vec![(r1, old)],
        },
        true,
        vec![],
        vec![false],
    ));
    // An established TCP connection idle for 1000 s (< 7440): the session
    // stays, so its mapping stays although idle past its own timeout (240),
    // and so does its filter entry however idle; the mapping's idle filter
    // entry for another remote address, with no session, goes.
    all.push((
        Binding {
            inside: Ep(h, 40000, TCP),
            public: Ep(pool, 40000, TCP),
            mapping_seen: old,
            flags: 0,
            sessions: vec![(r1, 443, old, established)],
            filters: vec![(r1, old), (r2, old)],
        },
        true,
        vec![true],
        vec![true, false],
    ));
    // A transitory TCP session idle past 240 s: it goes; its mapping,
    // refreshed recently by another session, stays with that one.
    all.push((
        Binding {
            inside: Ep(h, 40001, TCP),
            public: Ep(pool, 40001, TCP),
            mapping_seen: fresh,
            flags: 0,
            sessions: vec![(r1, 443, old, TCP_SYN_OUT), (r3, 443, fresh, established)],
            filters: vec![(r1, old), (r3, fresh)],
        },
        true,
        vec![false, true],
        vec![false, true],
    ));
    // No session left but the mapping itself recently used: it stays, and
    // its fresh filter entry with it.
    all.push((
        Binding {
            inside: Ep(h, 40002, UDP),
            public: Ep(pool, 40002, UDP),
            mapping_seen: fresh,
            flags: 0,
            sessions: vec![],
            filters: vec![(r2, fresh)],
        },
        true,
        vec![],
        vec![true],
    ));
    // An expired session whose mapping is fresh: the session goes only.
    all.push((
        Binding {
            inside: Ep(h, 40003, UDP),
            public: Ep(pool, 40003, UDP),
            mapping_seen: fresh,
            flags: 0,
            sessions: vec![(r2, 53, old, 0)],
            filters: vec![(r2, fresh)],
        },
        true,
        vec![false],
        vec![true],
    ));
    for (b, ..) in &all {
        b.write(&t);
    }
    // A fresh filter entry whose mapping does not exist, and a host count
    // for a host holding nothing: both go.
    let orphan = FilterKey {
        public_addr: pool,
        remote_addr: r3,
        public_port: 39999u16.to_be(),
        proto: UDP,
        _pad: 0,
    };
    t.put(MAP_FILTER, orphan, fresh);
    let nobody = be(Ipv4Addr::new(10, 3, 0, 1));
    t.put(MAP_HOST_PORTS, nobody, 5u64);
    // A stale count for a host that holds ports: corrected.
    t.put(MAP_HOST_PORTS, host(0), 1u64);

    let mut want_s = BTreeSet::new();
    let mut want_out = BTreeSet::new();
    let mut want_in = BTreeSet::new();
    let mut want_f = BTreeSet::new();
    let mut want_hosts: BTreeMap<u32, u64> = BTreeMap::new();
    let (mut n_s, mut n_m, mut gone_s, mut gone_m) = (0, 0, 0, 0);
    for (b, keep_m, keep_s, keep_f) in &all {
        n_m += 1;
        if *keep_m {
            want_out.insert(EK(bytes(ek(b.inside))));
            want_in.insert(EK(bytes(ek(b.public))));
            if b.flags & MAPPING_FORWARD == 0 {
                *want_hosts.entry(b.inside.0).or_default() += 1;
            }
        } else {
            gone_m += 1;
        }
        for (s, keep) in b.sessions.iter().zip(keep_s) {
            n_s += 1;
            if *keep {
                want_s.insert(SK(bytes(b.session_key(s.0, s.1))));
            } else {
                gone_s += 1;
            }
        }
        for (f, keep) in b.filters.iter().zip(keep_f) {
            if *keep {
                want_f.insert(FK(bytes(b.filter_key(f.0))));
            }
        }
    }

    let sweeper = Sweeper::open(t.dir()).unwrap();
    let r = sweeper.sweep(&config(), now).unwrap();
    assert_eq!(r.sessions_seen, n_s);
    assert_eq!(r.mappings_seen, n_m);
    assert_eq!(r.sessions_expired, gone_s);
    assert_eq!(r.mappings_expired, gone_m);
    assert_eq!(r.expired.len(), gone_m);
    assert_eq!(r.remaining.len(), n_m - gone_m);

    let got_s: BTreeSet<SK> = t.keys::<SK, Session>(MAP_SESSIONS);
    let got_out: BTreeSet<EK> = t.keys::<EK, Mapping>(MAP_NAPT_OUT);
    let got_in: BTreeSet<EK> = t.keys::<EK, Mapping>(MAP_NAPT_IN);
    let got_f: BTreeSet<FK> = t.keys::<FK, u64>(MAP_FILTER);
    assert!(
        got_s == want_s,
        "SESSIONS: {} left, {} expected",
        got_s.len(),
        want_s.len()
    );
    assert!(
        got_out == want_out,
        "NAPT_OUT: {} left, {} expected",
        got_out.len(),
        want_out.len()
    );
    assert!(
        got_in == want_in,
        "NAPT_IN: {} left, {} expected",
        got_in.len(),
        want_in.len()
    );
    assert!(
        got_f == want_f,
        "FILTER: {} left, {} expected",
        got_f.len(),
        want_f.len()
    );
    let hosts: BTreeMap<u32, u64> = batch::lookup_all::<u32, u64>(t.fd(MAP_HOST_PORTS))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        hosts, want_hosts,
        "HOST_PORTS: recounted from the mappings left"
    );

    // A second sweep at the same time finds nothing more to do.
    let r = sweeper.sweep(&config(), now).unwrap();
    assert_eq!(
        (r.sessions_expired, r.mappings_expired, r.filters_expired),
        (0, 0, 0)
    );
    assert_eq!(t.keys::<FK, u64>(MAP_FILTER), want_f);

    // A day later everything but the forward is gone.
    let r = sweeper.sweep(&config(), now + 86_400 * S).unwrap();
    assert_eq!(r.mappings_expired, n_m - gone_m - 1);
    assert!(t.keys::<SK, Session>(MAP_SESSIONS).is_empty());
    assert!(t.keys::<FK, u64>(MAP_FILTER).is_empty());
    assert_eq!(t.keys::<EK, Mapping>(MAP_NAPT_OUT).len(), 1);
    assert_eq!(t.keys::<EK, Mapping>(MAP_NAPT_IN).len(), 1);
}
