//! Facts about network interfaces in the current network namespace.

use anyhow::bail;

/// The interface index of `name`, or a clear error if there is none.
pub fn ifindex(name: &str) -> anyhow::Result<u32> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        bail!("invalid interface name '{name}'");
    }
    match nix::net::if_::if_nametoindex(name) {
        Ok(idx) if idx != 0 => Ok(idx),
        _ => bail!("no such interface: {name}"),
    }
}

/// A socket to ask the kernel about devices by ioctl.
fn ioctl_socket() -> std::io::Result<socket2::Socket> {
    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
}

#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x3;

/// Driver name and bus address of an interface (ethtool -i), if it has a
/// driver that answers.
pub fn driver_info(name: &str) -> Option<(String, String)> {
    let sock = ioctl_socket().ok()?;
    // SAFETY: zeroed POD structs.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: (&mut info as *mut EthtoolDrvinfo).cast(),
        _pad: [0; 16],
    };
    let n = name.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: SIOCETHTOOL with a valid ifreq whose data points at `info`.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            SIOCETHTOOL,
            &mut req as *mut IfreqData,
        )
    };
    if rc != 0 {
        return None;
    }
    let cstr = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    Some((cstr(&info.driver), cstr(&info.bus_info)))
}

/// `struct ifreq` with the `ifr_hwaddr` member of its union (a
/// `sockaddr`), padded to the union's full size.
#[repr(C)]
struct IfreqHwaddr {
    name: [u8; libc::IFNAMSIZ],
    /// `sa_family`: the device's `ARPHRD_*` type.
    family: u16,
    /// `sa_data`: the address (6 bytes for Ethernet), then padding.
    data: [u8; 22],
}

const SIOCGIFHWADDR: libc::c_ulong = 0x8927;
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

/// The link-layer type (`ARPHRD_*`, as in /sys/class/net/NAME/type) of
/// interface `name`. Asked by ioctl rather than read from sysfs: sysfs
/// shows the devices of the network namespace it was mounted in, which
/// under `nsenter --net` is not ours.
pub fn link_type(name: &str) -> anyhow::Result<u16> {
    let req = ifreq_hwaddr(name)
        .map_err(|e| anyhow::anyhow!("{name}: cannot read its link-layer type: {e}"))?;
    Ok(req.family)
}

/// The Ethernet (MAC) address of interface `name`, asked by ioctl as in
/// `link_type`.
pub fn hwaddr(name: &str) -> anyhow::Result<[u8; 6]> {
    let req = ifreq_hwaddr(name)
        .map_err(|e| anyhow::anyhow!("{name}: cannot read its MAC address: {e}"))?;
    if req.family != ARPHRD_ETHER {
        bail!(
            "{name}: not an Ethernet device (link-layer type {})",
            req.family
        );
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&req.data[..6]);
    Ok(mac)
}

/// The MTU of interface `name` (SIOCGIFMTU: the caller's network
/// namespace, unlike /sys/class/net under `nsenter --net`).
pub fn mtu(name: &str) -> anyhow::Result<u32> {
    #[repr(C)]
    struct IfreqMtu {
        name: [u8; libc::IFNAMSIZ],
        mtu: libc::c_int,
        pad: [u8; 20],
    }
    let sock = ioctl_socket()?;
    let mut req = IfreqMtu {
        name: [0; libc::IFNAMSIZ],
        mtu: 0,
        pad: [0; 20],
    };
    let n = name.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: SIOCGIFMTU with a valid, full-size ifreq.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SIOCGIFMTU,
            &mut req,
        )
    };
    if rc != 0 {
        bail!(
            "{name}: cannot read its MTU: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(req.mtu as u32)
}

/// SIOCGIFHWADDR on interface `name`.
fn ifreq_hwaddr(name: &str) -> std::io::Result<IfreqHwaddr> {
    let sock = ioctl_socket()?;
    let mut req = IfreqHwaddr {
        name: [0; libc::IFNAMSIZ],
        family: 0,
        data: [0; 22],
    };
    let n = name.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: SIOCGIFHWADDR with a valid, full-size ifreq.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            SIOCGIFHWADDR,
            &mut req as *mut IfreqHwaddr,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(req)
}

/// What kind of device has link-layer type `t`, for an error message.
fn link_kind(t: u16) -> Option<&'static str> {
    Some(match t {
        65534 => "e.g. tun/wireguard",
        768 => "ipip",
        769 => "ip6tnl",
        776 => "sit",
        778 => "gre",
        823 => "ip6gre",
        512 => "ppp",
        519 => "raw IP",
        32 => "infiniband",
        280 => "can",
        _ => return None,
    })
}

/// Refuses an interface whose packets do not start with an Ethernet
/// header: the programs parse one at offset 0, so on a TUN, WireGuard,
/// ipip/GRE or PPP device they would misread every packet (translating
/// nothing, or the wrong bytes). Loopback frames carry an Ethernet header
/// too.
pub fn require_ethernet(name: &str) -> anyhow::Result<()> {
    let t = link_type(name)?;
    if t == ARPHRD_ETHER || t == ARPHRD_LOOPBACK {
        return Ok(());
    }
    let kind = link_kind(t).map_or(String::new(), |k| format!(", {k}"));
    bail!(
        "{name}: not an Ethernet device (type {t}{kind}): xnat translates only on Ethernet \
         interfaces"
    )
}

/// Refuses an interface xnat cannot attach to (as the external or an
/// inside interface): one that does not exist, or whose packets do not
/// start with an Ethernet header.
pub fn check_attachable(name: &str) -> anyhow::Result<()> {
    ifindex(name)?;
    require_ethernet(name)
}

/// Whether `name` is a virtual device (veth, bridge, tun, ...): those have
/// no bus address. On them XDP cannot see the skb's checksum state, so the
/// `auto` ingress mode picks TC (README, "Ingress modes and checksum
/// offload").
pub fn is_virtual(name: &str) -> bool {
    match driver_info(name) {
        Some((_, bus)) => bus.is_empty() || bus == "N/A",
        None => true,
    }
}

/// The IPv4 addresses of `name`, primary first (kernel order).
pub fn ipv4_addrs(name: &str) -> anyhow::Result<Vec<std::net::Ipv4Addr>> {
    addrs_of(Some(name))
}

/// Every IPv4 address of this network namespace, on any device.
pub fn local_ipv4_addrs() -> anyhow::Result<Vec<std::net::Ipv4Addr>> {
    addrs_of(None)
}

/// The IPv4 addresses of device `name`, or of all devices.
fn addrs_of(name: Option<&str>) -> anyhow::Result<Vec<std::net::Ipv4Addr>> {
    Ok(nix::ifaddrs::getifaddrs()?
        .filter(|ifa| name.is_none_or(|n| ifa.interface_name == n))
        .filter_map(|ifa| {
            let sin = ifa.address?.as_sockaddr_in().copied()?;
            Some(sin.ip())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_carries_an_ethernet_header() {
        assert_eq!(link_type("lo").unwrap(), ARPHRD_LOOPBACK);
        require_ethernet("lo").unwrap();
    }

    #[test]
    fn tunnels_are_named_in_the_refusal() {
        assert_eq!(link_kind(65534), Some("e.g. tun/wireguard"));
        assert_eq!(link_kind(778), Some("gre"));
        assert_eq!(link_kind(ARPHRD_ETHER), None);
    }

    #[test]
    fn a_missing_interface_is_an_error() {
        let e = link_type("nosuch0").unwrap_err().to_string();
        assert!(e.starts_with("nosuch0: "), "{e}");
    }
}
