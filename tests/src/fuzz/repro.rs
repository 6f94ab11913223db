//! A mismatch as a Rust test: the map state written with
//! [`crate::napt_maps::Napt`], the frame built with [`crate::frame`] plus
//! the byte edits the generator made, and the model's expectation.

use std::fmt::Write as _;

use crate::bpf::Hook;
use crate::frame::{L4, Packet};
use crate::model::State;
use crate::napt_maps::ip;

fn bytes(b: &[u8]) -> String {
    let items: Vec<String> = b.iter().map(|x| format!("0x{x:02x}")).collect();
    let mut s = String::from("[");
    for (i, chunk) in items.chunks(16).enumerate() {
        if i > 0 {
            s.push_str("\n       ");
        }
        s.push_str(&chunk.join(", "));
        s.push(',');
    }
    s.push(']');
    s
}

fn addr(a: u32) -> String {
    let o = ip(a).octets();
    format!("Ipv4Addr::new({}, {}, {}, {})", o[0], o[1], o[2], o[3])
}

/// `p` as frame.rs builder calls.
pub fn packet_code(p: &Packet) -> String {
    let l4 = match &p.l4 {
        L4::Tcp(t) => format!(
            "L4::Tcp(Tcp {{ sport: {}, dport: {}, seq: {:#x}, ack: {:#x}, flags: {:#04x}, window: {}, urgent: {}, options: vec!{}, payload: vec!{} }})",
            t.sport,
            t.dport,
            t.seq,
            t.ack,
            t.flags,
            t.window,
            t.urgent,
            bytes(&t.options),
            bytes(&t.payload)
        ),
        L4::Udp(u) => format!(
            "L4::Udp(Udp {{ sport: {}, dport: {}, payload: vec!{}, no_checksum: {} }})",
            u.sport,
            u.dport,
            bytes(&u.payload),
            u.no_checksum
        ),
        L4::Icmp(i) => format!(
            "L4::Icmp(Icmp {{ typ: {}, code: {}, rest: {}, data: vec!{} }})",
            i.typ,
            i.code,
            bytes(&i.rest),
            bytes(&i.data)
        ),
        L4::Raw { proto, bytes: b } => {
            format!("L4::Raw {{ proto: {proto}, bytes: vec!{} }}", bytes(b))
        }
    };
    let a = |x: std::net::Ipv4Addr| addr(u32::from_ne_bytes(x.octets()));
    format!(
        "Packet {{\n        ip: Ipv4 {{ src: {}, dst: {}, tos: {:#04x}, id: {:#06x}, flags: {:#06x}, frag_offset: {}, ttl: {}, options: vec!{} }},\n        l4: {l4},\n    }}",
        a(p.ip.src),
        a(p.ip.dst),
        p.ip.tos,
        p.ip.id,
        p.ip.flags,
        p.ip.frag_offset,
        p.ip.ttl,
        bytes(&p.ip.options)
    )
}

/// Lines turning `from` into `to`.
fn edits(from: &[u8], to: &[u8]) -> String {
    let mut s = String::new();
    if to.len() < from.len() {
        let _ = writeln!(s, "    f.truncate({});", to.len());
    }
    for (i, (a, b)) in from.iter().zip(to).enumerate() {
        if a != b {
            let _ = writeln!(s, "    f[{i}] = 0x{b:02x};");
        }
    }
    if to.len() > from.len() {
        let _ = writeln!(s, "    f.extend_from_slice(&{});", bytes(&to[from.len()..]));
    }
    s
}

/// The map state `st` as calls on a `Napt` named `n`.
pub fn state_code(st: &State) -> String {
    let mut s = String::new();
    let c = &st.config;
    let pool: Vec<String> = st.pool.iter().map(|a| addr(*a)).collect();
    let internal: Vec<String> = st
        .internal
        .iter()
        .map(|(a, l)| format!("({}, {l})", addr(*a)))
        .collect();
    let _ = writeln!(
        s,
        "    let mut n = Napt::with(&[{}], &[{}], |c| {{\n        c.filtering = {};\n        c.port_min = {};\n        c.port_max = {};\n        c.max_ports_per_host = {};\n        c.allocation = {};\n        c.det_hosts_per_addr = {};\n        c.det_ports_per_host = {};\n        c.block_size = {};\n        c.max_blocks_per_host = {};\n    }});",
        pool.join(", "),
        internal.join(", "),
        c.filtering,
        c.port_min,
        c.port_max,
        c.max_ports_per_host,
        c.allocation,
        c.det_hosts_per_addr,
        c.det_ports_per_host,
        c.block_size,
        c.max_blocks_per_host
    );
    let mut stat: Vec<_> = st.static_out.iter().collect();
    stat.sort();
    for (p, q) in stat {
        let _ = writeln!(s, "    n.add_static({}, {});", addr(*p), addr(*q));
    }
    let ep = |k: &nat_common::EndpointKey| {
        format!(
            "Endpoint::new({}, {}, {})",
            addr(k.addr),
            u16::from_be(k.port),
            k.proto
        )
    };
    // Written as plain map entries (fill), whole values spelled out: a
    // mapping's first session is part of its NAPT_OUT value.
    let mut out: Vec<_> = st
        .napt_out
        .iter()
        .map(|(k, v)| (format!("{k:?}"), k, v))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, k, m) in out {
        let f = &m.first;
        let _ = writeln!(
            s,
            "    n.fill(Loaded::napt_out, 1, |_| {}.key(), Mapping {{ addr: u32::from_ne_bytes({}.octets()), port: {}u16.to_be(), flags: {}, created: {}, last_seen: {}, first: FirstSession {{ remote_addr: u32::from_ne_bytes({}.octets()), remote_port: {}u16.to_be(), tcp: {}, live: {}, last_seen: {}, packets_out: {}, packets_in: {}, bytes_out: {}, bytes_in: {} }} }});",
            ep(k),
            addr(m.addr),
            u16::from_be(m.port),
            m.flags,
            m.created,
            m.last_seen,
            addr(f.remote_addr),
            u16::from_be(f.remote_port),
            f.tcp,
            f.live,
            f.last_seen,
            f.packets_out,
            f.packets_in,
            f.bytes_out,
            f.bytes_in
        );
    }
    let mut inb: Vec<_> = st
        .napt_in
        .iter()
        .map(|(k, v)| (format!("{k:?}"), k, v))
        .collect();
    inb.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, k, v) in inb {
        let _ = writeln!(
            s,
            "    n.fill(Loaded::napt_in, 1, |_| {}.key(), InsideEndpoint {{ addr: u32::from_ne_bytes({}.octets()), port: {}u16.to_be(), flags: {} }});",
            ep(k),
            addr(v.addr),
            u16::from_be(v.port),
            v.flags
        );
    }
    let mut ss: Vec<_> = st
        .sessions
        .iter()
        .map(|(k, v)| (format!("{k:?}"), k, v))
        .collect();
    ss.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, k, v) in ss {
        let _ = writeln!(
            s,
            "    n.put_table_session(session_key({}, ({}, {}), ({}, {})), Session {{ public_addr: u32::from_ne_bytes({}.octets()), public_port: {}u16.to_be(), tcp: {}, packets_out: {}, packets_in: {}, bytes_out: {}, bytes_in: {}, created: {}, last_seen: {}, flags: {} }});",
            k.proto,
            addr(k.inside_addr),
            u16::from_be(k.inside_port),
            addr(k.remote_addr),
            u16::from_be(k.remote_port),
            addr(v.public_addr),
            u16::from_be(v.public_port),
            v.tcp,
            v.packets_out,
            v.packets_in,
            v.bytes_out,
            v.bytes_in,
            v.created,
            v.last_seen,
            v.flags
        );
    }
    for (k, v) in &st.filter {
        let public = nat_common::EndpointKey {
            addr: k.public_addr,
            port: k.public_port,
            proto: k.proto,
            _pad: 0,
        };
        let _ = writeln!(
            s,
            "    n.fill(Loaded::filter, 1, |_| filter_key({}, {}), {v}u64);",
            ep(&public),
            addr(k.remote_addr)
        );
    }
    for (a, v) in &st.host_ports {
        let _ = writeln!(s, "    n.set_host_ports({}, {v});", addr(*a));
    }
    let mut blocks: Vec<_> = st.blocks.iter().collect();
    blocks.sort_by_key(|(k, _)| **k);
    for (k, o) in blocks {
        let _ = writeln!(
            s,
            "    n.fill(Loaded::blocks, 1, |_| blocks::BlockKey {{ addr: u32::from_ne_bytes({}.octets()), index: {} }}, blocks::BlockOwner {{ host: u32::from_ne_bytes({}.octets()), _pad: 0, allocated: {} }});",
            addr(k.addr),
            k.index,
            addr(o.host),
            o.allocated
        );
    }
    let mut lists: Vec<_> = st.host_blocks.iter().collect();
    lists.sort_by_key(|(h, _)| **h);
    for (h, l) in lists {
        let _ = writeln!(
            s,
            "    n.fill(Loaded::host_blocks, 1, |_| u32::from_ne_bytes({}.octets()), blocks::HostBlocks {{ addr: u32::from_ne_bytes({}.octets()), count: {}, index: {:?} }});",
            addr(*h),
            addr(l.addr),
            l.count,
            l.index
        );
    }
    for (k, v) in &st.frags {
        let _ = writeln!(
            s,
            "    n.fill({}, 1, |_| FragKey {{ src: u32::from_ne_bytes({}.octets()), dst: u32::from_ne_bytes({}.octets()), id: {:#06x}, proto: {}, inbound: {} }}, FragValue {{ new_addr: u32::from_ne_bytes({}.octets()), _pad: 0, seen: dataplane_now_ns() }});",
            if k.inbound != 0 {
                "Loaded::frags_in"
            } else {
                "Loaded::frags_out"
            },
            addr(k.src),
            addr(k.dst),
            k.id,
            k.proto,
            k.inbound,
            addr(v.new_addr)
        );
    }
    for ((k, slot), h) in &st.held {
        let _ = writeln!(
            s,
            "    // FRAG_HOLD slot {slot} of {k:?} holds (send it first, on the same hook):\n    //   {}",
            bytes(&h.data).replace('\n', "\n    //   ")
        );
    }
    s
}

/// A complete test reproducing one frame's run.
#[allow(clippy::too_many_arguments)]
pub fn test_code(
    name: &str,
    st: &State,
    hook: Hook,
    base: Option<&Packet>,
    base_frame: &[u8],
    frame: &[u8],
    verdict: u32,
    expected: &[u8],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// In tests/tests/packet_napt.rs (its imports), or with:"
    );
    let _ = writeln!(
        s,
        "// use std::net::Ipv4Addr; use nat_common::*; use xnat_tests::{{bpf::Hook, frame::*, napt_maps::*}};"
    );
    let _ = writeln!(s, "#[test]\nfn {name}() {{");
    s.push_str(&state_code(st));
    match base {
        Some(p) => {
            let _ = writeln!(s, "    let p = {};", packet_code(p));
            let e = edits(base_frame, frame);
            let m = if e.is_empty() { "" } else { "mut " };
            let _ = writeln!(s, "    let {m}f = p.frame();");
            s.push_str(&e);
        }
        None => {
            let _ = writeln!(s, "    let f: Vec<u8> = vec!{};", bytes(frame));
        }
    }
    let _ = writeln!(s, "    let out = n.run(Hook::{hook:?}, &f);");
    let _ = writeln!(s, "    assert_eq!(out.verdict, {verdict}, \"verdict\");");
    let _ = writeln!(s, "    let expected: Vec<u8> = vec!{};", bytes(expected));
    let _ = writeln!(s, "    assert_frame_eq(\"output\", &out.data, &expected);");
    let _ = writeln!(
        s,
        "    // The maps afterwards (n.state()) against the differences listed above.\n}}"
    );
    s
}
