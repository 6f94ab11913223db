//! `xnat flows flush` against bindings that change between its read and
//! its delete (root: it creates BPF maps).
//!
//! The flush's two halves (`flush::read`, `flush::delete`) run on plain
//! hash maps with the binding tables' layouts, pinned in a directory of
//! their own; between them the test changes the tables the way the data
//! plane and the agent's sweep can meanwhile.

use std::net::Ipv4Addr;

use nat_common::{
    EndpointKey, FilterKey, FirstSession, InsideEndpoint, MAP_FILTER, MAP_HOST_PORTS, MAP_NAPT_IN,
    MAP_NAPT_OUT, MAP_SESSIONS, Mapping, Session, SessionKey,
};
use nat_userspace::tables::flush::{self, Filter, Flushed};
use xnat_tests::{binding_tables::Tables, napt_maps::be};

const S: u64 = 1_000_000_000;
const UDP: u8 = 17;

#[derive(Clone, Copy, Debug)]
struct Ep(Ipv4Addr, u16);

fn key(e: Ep) -> EndpointKey {
    EndpointKey {
        addr: be(e.0),
        port: e.1.to_be(),
        proto: UDP,
        _pad: 0,
    }
}

fn pool(port: u16) -> Ep {
    Ep(Ipv4Addr::new(198, 51, 100, 1), port)
}

fn remote(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, i)
}

/// One dynamic binding as the data plane makes it, with a further session
/// (and its filter entry) beyond the first.
struct Binding {
    inside: Ep,
    public: Ep,
    created: u64,
    /// The further session's remote address.
    other_remote: Ipv4Addr,
}

impl Binding {
    fn mapping(&self) -> Mapping {
        Mapping {
            addr: be(self.public.0),
            port: self.public.1.to_be(),
            flags: 0,
            created: self.created,
            last_seen: self.created,
            first: FirstSession {
                remote_addr: be(remote(1)),
                remote_port: 53u16.to_be(),
                live: 1,
                last_seen: self.created,
                ..Default::default()
            },
        }
    }

    fn session_key(&self) -> SessionKey {
        SessionKey {
            inside_addr: be(self.inside.0),
            remote_addr: be(self.other_remote),
            inside_port: self.inside.1.to_be(),
            remote_port: 53u16.to_be(),
            proto: UDP,
            _pad: [0; 3],
        }
    }

    fn filter_key(&self) -> FilterKey {
        FilterKey {
            public_addr: be(self.public.0),
            remote_addr: be(self.other_remote),
            public_port: self.public.1.to_be(),
            proto: UDP,
            _pad: 0,
        }
    }

    fn names(&self) -> InsideEndpoint {
        InsideEndpoint {
            addr: be(self.inside.0),
            port: self.inside.1.to_be(),
            flags: 0,
        }
    }

    /// Writes every entry (the host's port count goes up by one).
    fn write(&self, t: &Tables) {
        t.put(MAP_NAPT_OUT, key(self.inside), self.mapping());
        t.put(MAP_NAPT_IN, key(self.public), self.names());
        let session = Session {
            created: self.created,
            last_seen: self.created,
            public_addr: be(self.public.0),
            public_port: self.public.1.to_be(),
            ..Default::default()
        };
        t.put(MAP_SESSIONS, self.session_key(), session);
        t.put(MAP_FILTER, self.filter_key(), self.created);
        let held: u64 = t.get(MAP_HOST_PORTS, be(self.inside.0)).unwrap_or(0);
        t.put(MAP_HOST_PORTS, be(self.inside.0), held + 1);
    }

    /// Deletes every entry, as the sweep expires a binding.
    fn expire(&self, t: &Tables) {
        t.remove(MAP_NAPT_OUT, key(self.inside));
        t.remove(MAP_NAPT_IN, key(self.public));
        t.remove(MAP_SESSIONS, self.session_key());
        t.remove(MAP_FILTER, self.filter_key());
        t.remove(MAP_HOST_PORTS, be(self.inside.0));
    }

    /// Whether every entry is there, as written.
    fn intact(&self, t: &Tables) -> Result<(), String> {
        let out: Option<Mapping> = t.get(MAP_NAPT_OUT, key(self.inside));
        if out != Some(self.mapping()) {
            return Err(format!("NAPT_OUT of {:?} is {out:?}", self.inside));
        }
        let inb: Option<InsideEndpoint> = t.get(MAP_NAPT_IN, key(self.public));
        if inb != Some(self.names()) {
            return Err(format!("NAPT_IN of {:?} is {inb:?}", self.public));
        }
        if t.get::<_, Session>(MAP_SESSIONS, self.session_key())
            .is_none()
        {
            return Err(format!("the session of {:?} is gone", self.inside));
        }
        if t.get::<_, u64>(MAP_FILTER, self.filter_key()).is_none() {
            return Err(format!("the filter entry of {:?} is gone", self.public));
        }
        Ok(())
    }
}

fn host_ports(t: &Tables, addr: Ipv4Addr) -> Option<u64> {
    t.get(MAP_HOST_PORTS, be(addr))
}

/// Nothing changed between read and delete: the flushed host's bindings
/// go, wholly; another host's stay.
#[test]
fn flush_deletes_what_it_read() {
    let t = Tables::new("flush-rules", 64);
    let now = 100_000 * S;
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let flushed = Binding {
        inside: Ep(a, 4000),
        public: pool(4000),
        created: now,
        other_remote: remote(2),
    };
    let other = Binding {
        inside: Ep(b, 4000),
        public: pool(4001),
        created: now,
        other_remote: remote(3),
    };
    flushed.write(&t);
    other.write(&t);

    let done = flush::flush(
        t.dir(),
        Filter {
            proto: None,
            inside: Some(a.into()),
        },
    )
    .unwrap();
    assert_eq!(
        done,
        Flushed {
            sessions: 2,
            mappings: 1
        }
    );
    assert_eq!(t.entries::<EndpointKey, Mapping>(MAP_NAPT_OUT).len(), 1);
    assert_eq!(
        t.entries::<EndpointKey, InsideEndpoint>(MAP_NAPT_IN).len(),
        1
    );
    assert_eq!(t.entries::<SessionKey, Session>(MAP_SESSIONS).len(), 1);
    assert_eq!(t.entries::<FilterKey, u64>(MAP_FILTER).len(), 1);
    assert_eq!(host_ports(&t, a), None);
    other.intact(&t).unwrap();
    assert_eq!(host_ports(&t, b), Some(1));
}

/// Between the flush's read and its delete the binding expired, another
/// host's new mapping got its public endpoint, and its own inside endpoint
/// got a new mapping: the flush must take none of those newer entries.
#[test]
fn flush_leaves_bindings_made_after_its_read() {
    let t = Tables::new("flush-rules", 64);
    let now = 100_000 * S;
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let read = Binding {
        inside: Ep(a, 4000),
        public: pool(4000),
        created: now,
        other_remote: remote(2),
    };
    read.write(&t);
    let snapshot = flush::read(t.dir(), Filter::default()).unwrap();
    assert_eq!(snapshot.mappings.len(), 1);

    read.expire(&t);
    let rebound = Binding {
        inside: Ep(b, 4000),
        public: read.public,
        created: now + S,
        other_remote: remote(3),
    };
    rebound.write(&t);
    let remade = Binding {
        inside: read.inside,
        public: pool(4001),
        created: now + 2 * S,
        other_remote: remote(4),
    };
    remade.write(&t);

    let done = flush::delete(t.dir(), &snapshot).unwrap();
    assert_eq!(done.mappings, 0, "no mapping as read was left to delete");
    rebound
        .intact(&t)
        .expect("the binding that got the flushed public endpoint");
    remade
        .intact(&t)
        .expect("the flushed inside endpoint's new binding");
    assert_eq!(host_ports(&t, a), Some(1));
    assert_eq!(host_ports(&t, b), Some(1));
}

/// The mapping is still as read, but its public endpoint's NAPT_IN entry
/// names another inside endpoint by the time of the delete: the mapping
/// goes, the entry stays (it is not the flushed binding's; the sweep's
/// orphan scan deals with it).
#[test]
fn flush_leaves_an_inbound_entry_repointed_after_its_read() {
    let t = Tables::new("flush-rules", 64);
    let now = 100_000 * S;
    let read = Binding {
        inside: Ep(Ipv4Addr::new(10, 0, 0, 1), 4000),
        public: pool(4000),
        created: now,
        other_remote: remote(2),
    };
    read.write(&t);
    let snapshot = flush::read(t.dir(), Filter::default()).unwrap();

    let elsewhere = InsideEndpoint {
        addr: be(Ipv4Addr::new(10, 0, 0, 9)),
        port: 4000u16.to_be(),
        flags: 0,
    };
    t.put(MAP_NAPT_IN, key(read.public), elsewhere);

    let done = flush::delete(t.dir(), &snapshot).unwrap();
    assert_eq!(done.mappings, 1);
    assert_eq!(t.get::<_, Mapping>(MAP_NAPT_OUT, key(read.inside)), None);
    assert_eq!(
        t.get::<_, InsideEndpoint>(MAP_NAPT_IN, key(read.public)),
        Some(elsewhere),
        "the re-pointed NAPT_IN entry"
    );
}

/// NAT64 hosts counted per prefix (`--nat64-host-prefix 64`): flushing one
/// IPv6 host takes its mappings off its /64's count (the `HOST_PORTS`
/// entry of the prefix's stand-in), not off a count of its own; the
/// other host of the /64 keeps its share.
#[test]
fn flush_lowers_a_nat64_hosts_prefix_count() {
    use nat_common::nat64::{
        MAP_NAT64, MAP_NAT64_HOSTS, MAP_NAT64_IDS, Nat64Config, Nat64Host, WELL_KNOWN_PREFIX,
    };
    let t = Tables::new("flush-caps", 64);
    let now = 100_000 * S;
    let (sa, sb, prefix) = (
        Ipv4Addr::new(0, 0, 0, 1),
        Ipv4Addr::new(0, 0, 0, 2),
        Ipv4Addr::new(0, 0, 0, 3),
    );
    let a6: std::net::Ipv6Addr = "2001:db8:1::a".parse().unwrap();
    for (s, host) in [
        (sa, a6),
        (sb, "2001:db8:1::b".parse().unwrap()),
        (prefix, "2001:db8:1::".parse().unwrap()),
    ] {
        let h = Nat64Host {
            addr: host.octets(),
            created: 0,
        };
        t.put(MAP_NAT64_IDS, be(s), h);
        t.put(MAP_NAT64_HOSTS, h.addr, be(s));
    }
    let cfg = Nat64Config {
        host_prefix: 64,
        ..Nat64Config::new(WELL_KNOWN_PREFIX, 96).unwrap()
    };
    t.put(MAP_NAT64, 0u32, cfg);
    let bindings = [(sa, 4000), (sa, 4001), (sb, 4002)].map(|(s, port)| Binding {
        inside: Ep(s, port),
        public: pool(port),
        created: now,
        other_remote: remote(2),
    });
    for b in &bindings {
        t.put(MAP_NAPT_OUT, key(b.inside), b.mapping());
        t.put(MAP_NAPT_IN, key(b.public), b.names());
    }
    t.put(MAP_HOST_PORTS, be(prefix), 3u64);

    let done = flush::flush(
        t.dir(),
        Filter {
            proto: None,
            inside: Some(a6.into()),
        },
    )
    .unwrap();
    assert_eq!(done.mappings, 2);
    assert_eq!(
        host_ports(&t, prefix),
        Some(1),
        "the /64's count, less A's two"
    );
    assert_eq!(host_ports(&t, sa), None);
    assert_eq!(t.entries::<EndpointKey, Mapping>(MAP_NAPT_OUT).len(), 1);
}
