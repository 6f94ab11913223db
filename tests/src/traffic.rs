//! Real TCP and UDP traffic between namespaces with std sockets owned by the
//! test process (created inside a namespace with [`Netns::in_ns`]). Every
//! blocking call has a timeout.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// Bound for connects, accepts and each read/write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A deterministic, non-repeating-looking payload of `len` bytes.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ seed)
        .collect()
}

/// Accepts one connection within `timeout`.
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> (TcpStream, SocketAddr) {
    listener.set_nonblocking(true).expect("set_nonblocking");
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((s, peer)) => {
                s.set_nonblocking(false).expect("set_nonblocking");
                return (s, peer);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    panic!(
                        "no connection accepted on {} within {timeout:?}",
                        listener.local_addr().unwrap()
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// What a TCP echo exchange observed.
#[derive(Debug)]
pub struct TcpSeen {
    /// The client's address as the server saw it.
    pub server_saw_peer: SocketAddr,
    /// The server's address as the client saw it (what it connected to).
    pub client_saw_peer: SocketAddr,
    /// The client socket's own address.
    pub client_local: SocketAddr,
}

/// A TCP server in `server_ns` listening on `listen`; a client in `client_ns`
/// connects to `connect_to`, sends `len` bytes, the server echoes them, and
/// the client checks it got the same bytes back.
pub fn tcp_echo(
    client_ns: &Netns,
    server_ns: &Netns,
    listen: SocketAddrV4,
    connect_to: SocketAddrV4,
    len: usize,
) -> TcpSeen {
    let listener = server_ns
        .in_ns(|| TcpListener::bind(listen))
        .unwrap_or_else(|e| panic!("bind {listen} in {}: {e}", server_ns.name()));
    let client = client_ns
        .in_ns(|| TcpStream::connect_timeout(&connect_to.into(), IO_TIMEOUT))
        .unwrap_or_else(|e| {
            panic!(
                "TCP connect from {} to {connect_to} failed: {e}",
                client_ns.name()
            )
        });
    let (server, server_saw_peer) = accept_within(&listener, IO_TIMEOUT);
    // Before the exchange: once both sides closed, these report ENOTCONN.
    let client_saw_peer = client.peer_addr().unwrap();
    let client_local = client.local_addr().unwrap();
    for s in [&client, &server] {
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    }
    let data = payload(len, 0x5a);
    let echoed = std::thread::scope(|sc| {
        // Server: echo until EOF.
        sc.spawn(|| {
            let mut r = server.try_clone().unwrap();
            let mut w = &server;
            let n = std::io::copy(&mut r, &mut w).expect("server echo");
            w.shutdown(Shutdown::Write).unwrap();
            n
        });
        // Client writer.
        sc.spawn(|| {
            let mut w = &client;
            w.write_all(&data).expect("client write");
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::with_capacity(len);
        (&client)
            .read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("client read after {} bytes: {e}", got.len()));
        got
    });
    assert!(
        echoed == data,
        "TCP echo via {connect_to}: got {} bytes back, sent {len}, contents {}",
        echoed.len(),
        if echoed.len() == len { "differ" } else { "-" }
    );
    TcpSeen {
        server_saw_peer,
        client_saw_peer,
        client_local,
    }
}

/// What a UDP exchange observed.
#[derive(Debug)]
pub struct UdpSeen {
    /// Source address of the client's datagram at the server.
    pub server_saw_src: SocketAddr,
    /// Source address of the server's reply at the client.
    pub client_saw_src: SocketAddr,
}

/// Receives one datagram within `timeout` (retrying only on read timeouts).
pub fn recv_within(
    sock: &UdpSocket,
    buf: &mut [u8],
    timeout: Duration,
) -> Option<(usize, SocketAddr)> {
    let deadline = Instant::now() + timeout;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    loop {
        match sock.recv_from(buf) {
            Ok(r) => return Some(r),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if Instant::now() >= deadline {
                    return None;
                }
            }
            Err(e) => panic!("recv_from on {}: {e}", sock.local_addr().unwrap()),
        }
    }
}

/// A UDP server in `server_ns` bound to `listen`; a client in `client_ns`
/// bound to `client_bind` sends a `len`-byte datagram to `send_to`; the
/// server answers to the source it saw, and the client checks the answer.
/// A lost datagram is retried a few times (bounded).
pub fn udp_exchange(
    client_ns: &Netns,
    server_ns: &Netns,
    client_bind: SocketAddrV4,
    listen: SocketAddrV4,
    send_to: SocketAddrV4,
    len: usize,
) -> UdpSeen {
    let server = server_ns
        .in_ns(|| UdpSocket::bind(listen))
        .unwrap_or_else(|e| panic!("bind UDP {listen} in {}: {e}", server_ns.name()));
    let client = client_ns
        .in_ns(|| UdpSocket::bind(client_bind))
        .unwrap_or_else(|e| panic!("bind UDP {client_bind} in {}: {e}", client_ns.name()));
    let req = payload(len, 0x11);
    let resp = payload(len, 0x22);
    let mut buf = vec![0u8; 65536];
    for _attempt in 0..5 {
        client.send_to(&req, send_to).expect("client send_to");
        let Some((n, server_saw_src)) = recv_within(&server, &mut buf, Duration::from_millis(600))
        else {
            continue;
        };
        assert_eq!(
            &buf[..n],
            &req[..],
            "UDP request corrupted on the way to {send_to}"
        );
        server
            .send_to(&resp, server_saw_src)
            .expect("server send_to");
        let Some((n, client_saw_src)) = recv_within(&client, &mut buf, Duration::from_millis(600))
        else {
            continue;
        };
        assert_eq!(&buf[..n], &resp[..], "UDP reply corrupted on the way back");
        return UdpSeen {
            server_saw_src,
            client_saw_src,
        };
    }
    panic!(
        "UDP exchange {} ({client_bind}) -> {send_to} failed 5 times",
        client_ns.name()
    );
}

/// `SocketAddrV4::new` shorthand.
pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}
