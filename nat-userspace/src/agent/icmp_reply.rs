//! Answering "no public port left" with ICMP destination unreachable,
//! code 13 (communication administratively prohibited), as RFC 5508 asks
//! (README, "How NAPT behaves": port exhaustion). The data plane drops the packet and hands its header to
//! the agent through the EVENTS ring buffer; the agent sends the error from
//! a raw socket, so the kernel picks the source address on the route back
//! to the inside host.
use std::{
    io,
    net::{Ipv4Addr, SocketAddrV4},
};

use nat_common::csum;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub struct IcmpSender {
    sock: Socket,
}

impl IcmpSender {
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            sock: Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?,
        })
    }

    /// Sends type 3 code 13 quoting `quote` (the dropped datagram's IPv4
    /// header and 8 bytes) to the datagram's source.
    pub fn admin_prohibited(&self, quote: &[u8]) -> io::Result<Ipv4Addr> {
        if quote.len() < 28 || quote[0] >> 4 != 4 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad quote"));
        }
        let to = Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]);
        let mut msg = Vec::with_capacity(8 + quote.len());
        msg.extend_from_slice(&[3, 13, 0, 0, 0, 0, 0, 0]);
        msg.extend_from_slice(quote);
        let c = csum::checksum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let addr = SockAddr::from(SocketAddrV4::new(to, 0));
        self.sock.send_to(&msg, &addr)?;
        Ok(to)
    }
}
