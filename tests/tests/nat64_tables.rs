//! NAT64 in user space, on real maps (root: it creates BPF maps): the
//! agent's sweep freeing stand-ins no mapping uses, reconcile writing the
//! NAT64 prefix and the static NAT64 entries at attach and reload, and
//! the verbs naming a NAT64 binding's IPv6 host (`xnat flows`, `xnat
//! lookup`, `xnat flows flush --inside IPV6`). The data plane is not run:
//! the entries it would make are written directly, as it makes them.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use nat_common::{
    EndpointKey, InsideEndpoint, Ipv4Be, MAP_NAPT_IN, MAP_NAPT_OUT, MAP_STATIC_OUT, Mapping,
    NatConfig,
    nat64::{MAP_NAT64_HOSTS, MAP_NAT64_IDS, Nat64Host, STAND_IN_SPACE, stand_in},
};
use nat_userspace::{
    agent::expiry::{ORPHAN_SCAN_INTERVAL_NS, STAND_IN_GRACE_NS, Sweeper},
    loader::Limits,
    settings::{
        HookMode, Settings,
        napt::NaptSettings,
        nat64::{Nat64Prefix, Nat64Settings},
        reconcile,
    },
    tables::{Tables as Pinned, batch, flows, flush, nat64::StaticNat64},
};
use xnat_tests::binding_tables::Tables;

const S: u64 = 1_000_000_000;
const UDP: u8 = 17;

fn be(a: &str) -> Ipv4Be {
    u32::from_ne_bytes(a.parse::<Ipv4Addr>().unwrap().octets())
}

fn v6(a: &str) -> Ipv6Addr {
    a.parse().unwrap()
}

fn host(addr: &str, created: u64) -> Nat64Host {
    Nat64Host {
        addr: v6(addr).octets(),
        created,
    }
}

fn key(addr: Ipv4Be, port: u16) -> EndpointKey {
    EndpointKey {
        addr,
        port: port.to_be(),
        proto: UDP,
        _pad: 0,
    }
}

/// A UDP mapping of `inside` to 198.51.100.1:`public_port`, last used at
/// `seen`, and its NAPT_IN entry.
fn bind(t: &Tables, inside: EndpointKey, public_port: u16, seen: u64) {
    let m = Mapping {
        addr: be("198.51.100.1"),
        port: public_port.to_be(),
        created: seen,
        last_seen: seen,
        ..Mapping::default()
    };
    t.put(MAP_NAPT_OUT, inside, m);
    let inb = InsideEndpoint {
        addr: inside.addr,
        port: inside.port,
        flags: 0,
    };
    t.put(MAP_NAPT_IN, key(m.addr, public_port), inb);
}

fn config() -> NatConfig {
    NatConfig {
        pool_len: 1,
        ..xnat_tests::napt_maps::default_config()
    }
}

/// The sweep frees a stand-in once no mapping used it at two scans a
/// minute apart, the data plane made it over a minute ago, and it is not a
/// static NAT64 entry's; the host's NAT64_HOSTS entry goes with it only if
/// it still names that stand-in.
#[test]
fn sweep_frees_stand_ins_no_mapping_uses() {
    let t = Tables::new("nat64-stand-ins", 64);
    let t0 = 100_000 * S;
    let (used, unused, young, fixed, moved, leftover) = (
        stand_in(1),
        stand_in(2),
        stand_in(3),
        stand_in(STAND_IN_SPACE),
        stand_in(5),
        stand_in(6),
    );
    let long_ago = t0 - 10 * STAND_IN_GRACE_NS;
    let ids = [
        // Its host has a mapping (until it expires, below).
        (used, host("2001:db8::1", long_ago)),
        // No mapping: freed at the second scan.
        (unused, host("2001:db8::2", long_ago)),
        // No mapping yet, but given out just before the first scan.
        (young, host("2001:db8::3", t0 - S)),
        // A static NAT64 entry's (created 0, in STATIC_OUT): never.
        (fixed, host("2001:db8::4", 0)),
        // A dynamic stand-in of the static host from before it was made
        // static: NAT64_HOSTS names the static one now.
        (moved, host("2001:db8::4", long_ago)),
        // Created 0 but in no static entry (a reload that died half way).
        (leftover, host("2001:db8::6", 0)),
    ];
    for (s, h) in ids {
        t.put(MAP_NAT64_IDS, s, h);
        if s != moved {
            t.put(MAP_NAT64_HOSTS, h.addr, s);
        }
    }
    t.put(MAP_STATIC_OUT, fixed, be("203.0.113.4"));
    bind(&t, key(used, 40000), 1025, t0);

    let stand_ins = || -> BTreeSet<Ipv4Be> {
        t.entries::<Ipv4Be, Nat64Host>(MAP_NAT64_IDS)
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    let hosts = || -> BTreeSet<(Ipv6Addr, Ipv4Be)> {
        t.entries::<[u8; 16], Ipv4Be>(MAP_NAT64_HOSTS)
            .into_iter()
            .map(|(k, v)| (Ipv6Addr::from(k), v))
            .collect()
    };

    let sweeper = Sweeper::open(t.dir()).unwrap();
    // The first sweep starts the scans' clock; the first scan takes note.
    let r = sweeper
        .sweep(&config(), t0 - ORPHAN_SCAN_INTERVAL_NS)
        .unwrap();
    assert_eq!(r.stand_ins_freed, 0);
    let r = sweeper.sweep(&config(), t0).unwrap();
    assert_eq!(r.stand_ins_freed, 0, "the first scan only takes note");
    assert_eq!(stand_ins().len(), 6);
    // Within the minute: no scan.
    let r = sweeper.sweep(&config(), t0 + S).unwrap();
    assert_eq!(r.stand_ins_freed, 0);

    let second = t0 + ORPHAN_SCAN_INTERVAL_NS;
    let r = sweeper.sweep(&config(), second).unwrap();
    assert_eq!(r.stand_ins_freed, 3, "unused, moved and leftover");
    assert_eq!(stand_ins(), BTreeSet::from([used, young, fixed]));
    assert_eq!(
        hosts(),
        BTreeSet::from([
            (v6("2001:db8::1"), used),
            (v6("2001:db8::3"), young),
            // The static host keeps its entry: it named the static
            // stand-in, not the one freed.
            (v6("2001:db8::4"), fixed),
        ])
    );

    // The young one is old now, unused at this scan and the last: freed.
    // The used one's mapping expires (UDP: 300 s idle) at this sweep: noted.
    let third = t0 + 400 * S;
    let r = sweeper.sweep(&config(), third).unwrap();
    assert_eq!(r.mappings_expired, 1);
    assert_eq!(r.stand_ins_freed, 1);
    assert_eq!(stand_ins(), BTreeSet::from([used, fixed]));
    let r = sweeper
        .sweep(&config(), third + ORPHAN_SCAN_INTERVAL_NS)
        .unwrap();
    assert_eq!(r.stand_ins_freed, 1, "the stand-in of the expired mapping");
    assert_eq!(stand_ins(), BTreeSet::from([fixed]));
    assert_eq!(hosts(), BTreeSet::from([(v6("2001:db8::4"), fixed)]));
}

/// xnat's own object's maps, pinned in a directory of their own (no
/// program loaded or attached), as reconcile and the verbs open them.
struct Attachment {
    dir: PathBuf,
}

impl Attachment {
    const LIMITS: Limits = Limits {
        max_mappings: 64,
        max_sessions: 64,
    };

    fn new(tag: &str) -> Self {
        xnat_tests::bpf::require_root();
        nat_userspace::tables::bpffs::ensure_mounted().unwrap();
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/xnat-nat64-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _ebpf = nat_userspace::tables::loader(&dir, Self::LIMITS)
            .load(nat_userspace::ebpf_object())
            .expect("loading xnat's object");
        Attachment { dir }
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn tables(&self) -> Pinned {
        Pinned::at(&self.dir)
    }

    /// Brings the maps to `want`, as a reload does; the plan's summary.
    fn reconcile(&self, want: &Settings) -> String {
        let live = reconcile::read_live(&self.dir).unwrap();
        let plan = reconcile::plan(&live, want).unwrap();
        reconcile::apply(&self.dir, &live, &plan).unwrap();
        plan.summary()
    }

    fn put_id(&self, s: Ipv4Be, h: Nat64Host) {
        batch::update(self.tables().nat64_ids().unwrap().fd(), &s, &h).unwrap();
    }

    fn id(&self, s: Ipv4Be) -> Option<Nat64Host> {
        batch::lookup(self.tables().nat64_ids().unwrap().fd(), &s).unwrap()
    }

    fn put_host(&self, h: &str, s: Ipv4Be) {
        batch::update(
            self.tables().nat64_hosts().unwrap().fd(),
            &v6(h).octets(),
            &s,
        )
        .unwrap();
    }

    fn host(&self, h: &str) -> Option<Ipv4Be> {
        batch::lookup(self.tables().nat64_hosts().unwrap().fd(), &v6(h).octets()).unwrap()
    }

    fn static_in(&self, public: &str) -> Option<Ipv4Be> {
        batch::lookup(self.tables().static_in().unwrap().fd(), &be(public)).unwrap()
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn settings(nat64: Option<(&str, &[(&str, &str)])>) -> Settings {
    Settings {
        ifname: "xnat-none".into(),
        ingress: HookMode::Auto,
        inside: vec![],
        inside_hook: HookMode::Auto,
        xdp_redirect: vec![],
        keep: false,
        fast_path: false,
        static_maps: vec![("10.0.0.9".parse().unwrap(), "203.0.113.9".parse().unwrap())],
        napt: Some(NaptSettings {
            internal: vec!["10.0.0.0/8".parse().unwrap()],
            pool: vec!["198.51.100.1".parse().unwrap()],
            ..NaptSettings::default()
        }),
        limits: Attachment::LIMITS,
        forwards: vec![],
        metrics: None,
        log_bindings: None,
        ipfix: None,
        expiry_walk: Default::default(),
        sync: None,
        nat64: nat64.map(|(prefix, maps)| Nat64Settings {
            prefix: prefix.parse().unwrap(),
            maps: maps
                .iter()
                .map(|(i, p)| (v6(i), p.parse().unwrap()))
                .collect(),
            host_prefix: 64,
        }),
    }
}

/// Reconcile writes NAT64's prefix and its static entries (each a stand-in
/// of its own from the top of the space, past those taken), changes them
/// at a reload and takes them away when NAT64 is switched off; the data
/// plane's dynamic stand-ins are left alone throughout.
#[test]
fn reconcile_writes_nat64_and_its_static_entries() {
    let a = Attachment::new("reconcile");
    // The data plane's: a host whose hash landed on the top stand-in, and
    // a host that is about to become static.
    let (top, next, after) = (
        stand_in(STAND_IN_SPACE),
        stand_in(STAND_IN_SPACE - 1),
        stand_in(STAND_IN_SPACE - 2),
    );
    let dynamic = stand_in(42);
    a.put_id(top, host("2001:db8::99", 5 * S));
    a.put_host("2001:db8::99", top);
    a.put_id(dynamic, host("2001:db8::11", 7 * S));
    a.put_host("2001:db8::11", dynamic);

    let first = settings(Some((
        "64:ff9b::/96",
        &[
            ("2001:db8::10", "203.0.113.10"),
            ("2001:db8::11", "203.0.113.11"),
        ],
    )));
    let summary = a.reconcile(&first);
    assert!(
        summary.contains("2 static NAT64 mapping(s) added")
            && summary.contains("NAT64 prefix 64:ff9b::/96"),
        "{summary}"
    );
    let cfg = nat_userspace::settings::nat64::read_config(a.dir()).unwrap();
    // With the settings' host prefix (the default /64).
    assert_eq!(
        cfg,
        nat_common::nat64::Nat64Config {
            host_prefix: 64,
            ..Nat64Prefix::WELL_KNOWN.config()
        }
    );
    assert_eq!(a.id(next), Some(host("2001:db8::10", 0)));
    assert_eq!(a.id(after), Some(host("2001:db8::11", 0)));
    assert_eq!(a.host("2001:db8::10"), Some(next));
    assert_eq!(
        a.host("2001:db8::11"),
        Some(after),
        "the host's new flows go static"
    );
    assert_eq!(
        a.id(dynamic),
        Some(host("2001:db8::11", 7 * S)),
        "its dynamic stand-in stays for its bindings"
    );
    assert_eq!(a.id(top), Some(host("2001:db8::99", 5 * S)));
    assert_eq!(a.static_in("203.0.113.10"), Some(next));
    assert_eq!(a.static_in("203.0.113.11"), Some(after));
    let live = reconcile::read_live(a.dir()).unwrap();
    assert_eq!(
        live.static_maps, first.static_maps,
        "the static 1:1 maps without NAT64's"
    );
    assert_eq!(live.nat64_maps.len(), 2);
    // Applied: nothing more to do.
    assert_eq!(a.reconcile(&first), "no changes");
    // The metrics tell the static NAT64 entries from the static 1:1 maps,
    // and count the IPv6 hosts with a stand-in (the data plane's too).
    let text = nat_userspace::agent::metrics::render(a.dir(), "x", &Default::default()).unwrap();
    for line in [
        "xnat_static_mappings{interface=\"x\"} 1",
        "xnat_nat64_static_mappings{interface=\"x\"} 2",
        "xnat_nat64_hosts{interface=\"x\"} 4",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }

    // A reload: another prefix, ::10 to another address, ::11 gone, ::12
    // new.
    let second = settings(Some((
        "2001:db8:64::/96",
        &[
            ("2001:db8::10", "203.0.113.20"),
            ("2001:db8::12", "203.0.113.12"),
        ],
    )));
    let summary = a.reconcile(&second);
    assert_eq!(
        summary,
        "2 static NAT64 mapping(s) added, 2 static NAT64 mapping(s) removed, NAT64 prefix \
         2001:db8:64::/96, host prefix /64"
    );
    let cfg = nat_userspace::settings::nat64::read_config(a.dir()).unwrap();
    assert_eq!(
        Nat64Prefix::of(&cfg).unwrap().to_string(),
        "2001:db8:64::/96"
    );
    assert_eq!(a.host("2001:db8::11"), None);
    assert_eq!(a.static_in("203.0.113.10"), None);
    assert_eq!(a.static_in("203.0.113.11"), None);
    let entries: BTreeSet<(Ipv6Addr, Ipv4Addr)> = StaticNat64::open(a.dir())
        .unwrap()
        .list()
        .unwrap()
        .iter()
        .map(|e| (e.inside, e.public))
        .collect();
    assert_eq!(
        entries,
        BTreeSet::from([
            (v6("2001:db8::10"), "203.0.113.20".parse().unwrap()),
            (v6("2001:db8::12"), "203.0.113.12".parse().unwrap()),
        ])
    );
    for e in StaticNat64::open(a.dir()).unwrap().list().unwrap() {
        assert_eq!(a.host(&e.inside.to_string()), Some(e.stand_in));
        assert_eq!(a.id(e.stand_in), Some(host(&e.inside.to_string(), 0)));
        assert_eq!(a.static_in(&e.public.to_string()), Some(e.stand_in));
    }
    assert_eq!(a.reconcile(&second), "no changes");

    // NAT64 off: its static entries go, the static 1:1 map stays, the
    // data plane's stand-ins stay (their bindings expire as NAPT ones).
    let summary = a.reconcile(&settings(None));
    assert_eq!(
        summary,
        "2 static NAT64 mapping(s) removed, NAT64 switched off"
    );
    let cfg = nat_userspace::settings::nat64::read_config(a.dir()).unwrap();
    assert_eq!(cfg.enabled, 0);
    assert!(
        StaticNat64::open(a.dir())
            .unwrap()
            .list()
            .unwrap()
            .is_empty()
    );
    let ids: BTreeSet<Ipv4Be> = a
        .tables()
        .nat64_ids()
        .unwrap()
        .lookup_all()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(ids, BTreeSet::from([top, dynamic]));
    let statics = a.tables().static_out().unwrap().lookup_all().unwrap();
    assert_eq!(statics, vec![(be("10.0.0.9"), be("203.0.113.9"))]);
}

/// `xnat flows`, `xnat lookup` and `xnat flows flush --inside` name a NAT64
/// binding by its IPv6 host; a stand-in already freed is shown as it is.
#[test]
fn verbs_name_the_ipv6_host_of_a_nat64_binding() {
    let a = Attachment::new("verbs");
    a.reconcile(&settings(Some(("64:ff9b::/96", &[]))));
    let (s, gone) = (stand_in(0x1234), stand_in(0x1235));
    a.put_id(s, host("2001:db8::5", S));
    a.put_host("2001:db8::5", s);
    let now = nat_userspace::agent::clock::now_ns();
    let out = a.tables().napt_out().unwrap();
    let inb = a.tables().napt_in().unwrap();
    for (inside, public_port) in [
        (key(s, 40000), 1030),
        (key(gone, 40001), 1031),
        (key(be("10.0.0.2"), 5000), 1032),
    ] {
        let m = Mapping {
            addr: be("198.51.100.1"),
            port: u16::to_be(public_port),
            created: now,
            last_seen: now,
            ..Mapping::default()
        };
        batch::update(out.fd(), &inside, &m).unwrap();
        let back = InsideEndpoint {
            addr: inside.addr,
            port: inside.port,
            flags: 0,
        };
        batch::update(inb.fd(), &key(m.addr, public_port), &back).unwrap();
    }
    let cfg = nat_userspace::settings::napt::read_config(a.dir()).unwrap();

    // Mappings without a session list nothing; give each a first session.
    let with_session = |k: EndpointKey| {
        let mut m: Mapping = batch::lookup(out.fd(), &k).unwrap().unwrap();
        m.first.live = 1;
        m.first.last_seen = now;
        m.first.remote_addr = be("192.0.2.33");
        m.first.remote_port = 53u16.to_be();
        batch::update(out.fd(), &k, &m).unwrap();
    };
    with_session(key(s, 40000));
    with_session(key(gone, 40001));
    with_session(key(be("10.0.0.2"), 5000));
    let list = flows::read(a.dir(), &cfg).unwrap();
    let inside: BTreeSet<(String, IpAddr)> = list
        .iter()
        .map(|f| (f.inside.clone(), f.inside_addr))
        .collect();
    assert_eq!(
        inside,
        BTreeSet::from([
            (
                "[2001:db8::5]:40000".to_string(),
                "2001:db8::5".parse().unwrap()
            ),
            (
                "0.0.18.53:40001".to_string(),
                IpAddr::V4(Ipv4Addr::new(0, 0, 18, 53))
            ),
            ("10.0.0.2:5000".to_string(), "10.0.0.2".parse().unwrap()),
        ]),
        "{list:?}"
    );

    let holders = nat_userspace::lookup::live::holders(
        a.dir(),
        "198.51.100.1".parse().unwrap(),
        1030,
        &[UDP],
        None,
    )
    .unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].inside, "[2001:db8::5]:40000");

    // Flushing by the IPv6 host takes its binding only; a host without a
    // stand-in has none to flush.
    let none = flush::flush(
        a.dir(),
        flush::Filter {
            proto: None,
            inside: Some("2001:db8::77".parse().unwrap()),
        },
    )
    .unwrap();
    assert_eq!(none.mappings, 0);
    let done = flush::flush(
        a.dir(),
        flush::Filter {
            proto: None,
            inside: Some("2001:db8::5".parse().unwrap()),
        },
    )
    .unwrap();
    assert_eq!(done.mappings, 1);
    let left: Vec<EndpointKey> = out
        .lookup_all()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&key(s, 40000)));
}
