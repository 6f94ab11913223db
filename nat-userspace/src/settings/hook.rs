//! Where the programs hook in: [`HookMode`], the value of `--ingress`,
//! `--inside-hook` and their config keys.
use std::fmt;

/// Which hook a program runs at where packets arrive: inbound translation
/// on the external interface (`--ingress`, `ingress`), the outbound fast
/// path on the inside interfaces (`--inside-hook`, `inside-hook`).
/// `Auto`: XDP on physical NICs, TC on virtual devices (README, "Ingress
/// modes and checksum offload").
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookMode {
    Auto,
    Xdp,
    Tc,
}

impl HookMode {
    /// The hook for device `ifname`: `Auto` resolved by the device's kind.
    /// XDP cannot see an skb's checksum state, so virtual devices, whose
    /// packets from local sockets carry partial checksums, get TC.
    pub fn resolve(self, ifname: &str) -> HookMode {
        match self {
            HookMode::Auto if crate::loader::netdev::is_virtual(ifname) => HookMode::Tc,
            HookMode::Auto => HookMode::Xdp,
            m => m,
        }
    }
}

impl fmt::Display for HookMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookMode::Auto => "auto",
            HookMode::Xdp => "xdp",
            HookMode::Tc => "tc",
        })
    }
}
