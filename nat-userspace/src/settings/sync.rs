//! Binding sync (`--sync-listen`, `--sync-peer`, `--sync-key-file`,
//! `--sync-refresh`, or the file's `[sync]` table): gateways that announce
//! the mappings they make to each other, so a standby can take inbound
//! packets of flows it never saw (agent/sync). Checked here with the rest
//! of the settings: the key file is read now, so a bad one is refused
//! before anything is attached.
use std::{fmt, net::SocketAddr, path::PathBuf};

use super::{Layer, SettingError, Sourced, err, napt::Allocation, napt::NaptSettings};

/// Seconds between full re-announcements by default (`--sync-refresh`).
pub const DEFAULT_REFRESH: u32 = 30;
/// Longest refresh period: well within the shortest mapping timeout a
/// peer-learned mapping lives by (TCP transitory, 240 s by default).
pub const MAX_REFRESH: u32 = 120;
/// Shortest shared secret accepted.
pub const MIN_KEY_LEN: usize = 16;

/// The shared secret of `--sync-key-file`; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SyncKey {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SyncKey({}, {} bytes)",
            self.path.display(),
            self.bytes.len()
        )
    }
}

/// Binding sync, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncSettings {
    /// This gateway's sync socket (UDP).
    pub listen: SocketAddr,
    /// The peers announced to; datagrams are accepted from their addresses
    /// only.
    pub peers: Vec<SocketAddr>,
    pub key: Option<SyncKey>,
    /// Seconds between full re-announcements.
    pub refresh: u32,
}

/// The sync settings of `layer`, checked against the NAPT settings
/// (`None`: sync off).
pub fn resolve(
    layer: &Layer,
    napt: Option<&NaptSettings>,
) -> Result<Option<SyncSettings>, SettingError> {
    let peers = layer.sync_peers.clone().unwrap_or_default();
    let Some(listen) = &layer.sync_listen else {
        if let Some(p) = peers.first() {
            return err(
                &p.origin,
                "binding sync needs this gateway's own sync address too (--sync-listen \
                 ADDR:PORT, or listen in [sync])",
            );
        }
        let stray = [
            layer.sync_key_file.as_ref().map(|k| &k.origin),
            layer.sync_refresh.as_ref().map(|r| &r.origin),
        ];
        if let Some(o) = stray.into_iter().flatten().next() {
            return err(
                o,
                "applies to binding sync only, which needs --sync-listen and --sync-peer",
            );
        }
        return Ok(None);
    };
    if peers.is_empty() {
        return err(
            &listen.origin,
            "binding sync needs at least one peer to announce to (--sync-peer ADDR:PORT, or \
             peers in [sync])",
        );
    }
    let Some(n) = napt else {
        return err(
            &listen.origin,
            "binding sync shares NAPT mappings, and NAPT is off (a [napt] section, --masquerade, \
             --pool or --internal)",
        );
    };
    if let Allocation::Block { .. } = n.allocation {
        return err(
            &listen.origin,
            "binding sync does not support block allocation yet (--allocation block); use \
             deterministic or dynamic allocation",
        );
    }
    for (i, p) in peers.iter().enumerate() {
        if p.value.is_ipv4() != listen.value.is_ipv4() {
            return err(
                &p.origin,
                format!(
                    "peer {} and the sync address {} are of different address families",
                    p.value, listen.value
                ),
            );
        }
        if p.value == listen.value {
            return err(
                &p.origin,
                format!("{} is this gateway's own sync address", p.value),
            );
        }
        if let Some(first) = peers[..i].iter().find(|q| q.value == p.value) {
            return err(
                &p.origin,
                format!(
                    "peer {} is listed twice (first at {})",
                    p.value, first.origin
                ),
            );
        }
    }
    let refresh = match &layer.sync_refresh {
        None => DEFAULT_REFRESH,
        Some(r) if !(1..=MAX_REFRESH).contains(&r.value) => {
            return err(
                &r.origin,
                format!("{} s: the refresh period is 1 to {MAX_REFRESH} s", r.value),
            );
        }
        Some(r) => r.value,
    };
    let key = layer.sync_key_file.as_ref().map(read_key).transpose()?;
    Ok(Some(SyncSettings {
        listen: listen.value,
        peers: peers.iter().map(|p| p.value).collect(),
        key,
        refresh,
    }))
}

/// Reads the shared secret: the file's bytes less surrounding whitespace
/// (so `openssl rand -hex 32 > FILE` makes one), at least
/// [`MIN_KEY_LEN`] of them, in a file other users cannot read.
fn read_key(k: &Sourced<PathBuf>) -> Result<SyncKey, SettingError> {
    use std::os::unix::fs::MetadataExt as _;
    let path = &k.value;
    let shown = path.display();
    let meta = std::fs::metadata(path).or_else(|e| err(&k.origin, format!("{shown}: {e}")))?;
    if !meta.is_file() {
        return err(&k.origin, format!("{shown}: not a regular file"));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o006 != 0 {
        return err(
            &k.origin,
            format!(
                "{shown}: the sync key is readable or writable by every user (mode {mode:04o}; \
                 chmod o-rw)"
            ),
        );
    }
    let raw = std::fs::read(path).or_else(|e| err(&k.origin, format!("{shown}: {e}")))?;
    let bytes = raw.trim_ascii().to_vec();
    if bytes.len() < MIN_KEY_LEN {
        return err(
            &k.origin,
            format!(
                "{shown}: the sync key has {} bytes, at least {MIN_KEY_LEN} are needed (e.g. \
                 `openssl rand -hex 32 > {shown}`)",
                bytes.len()
            ),
        );
    }
    Ok(SyncKey {
        path: path.clone(),
        bytes,
    })
}

/// One line for the ready line and `xnat check`.
pub fn describe(s: &SyncSettings) -> String {
    let peers: Vec<String> = s.peers.iter().map(ToString::to_string).collect();
    format!(
        "binding sync on {} with {} (refresh {} s{})",
        s.listen,
        peers.join(","),
        s.refresh,
        if s.key.is_some() { ", keyed" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Origin;

    fn sourced<T>(v: T, name: &str) -> Sourced<T> {
        Sourced::new(v, Origin::flag(name))
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn napt(allocation: Allocation) -> NaptSettings {
        NaptSettings {
            allocation,
            ..NaptSettings::default()
        }
    }

    fn layer(listen: Option<&str>, peers: &[&str]) -> Layer {
        Layer {
            sync_listen: listen.map(|l| sourced(sa(l), "--sync-listen")),
            sync_peers: (!peers.is_empty()).then(|| {
                peers
                    .iter()
                    .map(|p| sourced(sa(p), "--sync-peer"))
                    .collect()
            }),
            ..Layer::default()
        }
    }

    fn message(l: &Layer, n: Option<&NaptSettings>) -> String {
        resolve(l, n).unwrap_err().to_string()
    }

    #[test]
    fn listen_and_peers_come_together() {
        let n = napt(Allocation::Dynamic);
        assert_eq!(resolve(&Layer::default(), Some(&n)).unwrap(), None);
        let e = message(&layer(Some("10.9.0.1:4790"), &[]), Some(&n));
        assert!(
            e.starts_with("--sync-listen: ") && e.contains("--sync-peer"),
            "{e}"
        );
        let e = message(&layer(None, &["10.9.0.2:4790"]), Some(&n));
        assert!(
            e.starts_with("--sync-peer: ") && e.contains("--sync-listen"),
            "{e}"
        );
        let l = Layer {
            sync_refresh: Some(sourced(10, "--sync-refresh")),
            ..Layer::default()
        };
        assert!(message(&l, Some(&n)).starts_with("--sync-refresh: applies to binding sync"));
        let s = resolve(&layer(Some("10.9.0.1:4790"), &["10.9.0.2:4790"]), Some(&n))
            .unwrap()
            .unwrap();
        assert_eq!(s.refresh, DEFAULT_REFRESH);
        assert_eq!(s.peers, vec![sa("10.9.0.2:4790")]);
    }

    #[test]
    fn needs_napt_and_refuses_blocks() {
        let l = layer(Some("10.9.0.1:4790"), &["10.9.0.2:4790"]);
        assert!(message(&l, None).contains("NAPT is off"));
        let b = napt(Allocation::Block {
            size: 256,
            max_per_host: 8,
            hold_down: 60,
        });
        let e = message(&l, Some(&b));
        assert!(
            e.contains("binding sync does not support block allocation yet"),
            "{e}"
        );
        let d = napt(Allocation::Deterministic {
            hosts_per_addr: 1,
            ports_per_host: 64,
        });
        resolve(&l, Some(&d)).unwrap().unwrap();
    }

    #[test]
    fn peers_and_refresh_are_checked() {
        let n = napt(Allocation::Dynamic);
        let twice = layer(Some("10.9.0.1:4790"), &["10.9.0.2:4790", "10.9.0.2:4790"]);
        assert!(message(&twice, Some(&n)).contains("listed twice"));
        let own = layer(Some("10.9.0.1:4790"), &["10.9.0.1:4790"]);
        assert!(message(&own, Some(&n)).contains("own sync address"));
        let family = layer(Some("10.9.0.1:4790"), &["[::1]:4790"]);
        assert!(message(&family, Some(&n)).contains("address families"));
        for (r, ok) in [(0, false), (1, true), (120, true), (121, false)] {
            let l = Layer {
                sync_refresh: Some(sourced(r, "--sync-refresh")),
                ..layer(Some("10.9.0.1:4790"), &["10.9.0.2:4790"])
            };
            assert_eq!(resolve(&l, Some(&n)).is_ok(), ok, "refresh {r}");
        }
    }

    #[test]
    fn the_key_file_is_checked() {
        use std::os::unix::fs::PermissionsExt as _;
        let n = napt(Allocation::Dynamic);
        let dir = std::env::temp_dir().join(format!("xnat-sync-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let with_key = |name: &str, text: &[u8], mode: u32| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let l = Layer {
                sync_key_file: Some(sourced(p, "--sync-key-file")),
                ..layer(Some("10.9.0.1:4790"), &["10.9.0.2:4790"])
            };
            resolve(&l, Some(&n))
        };
        let good = with_key("good", b"0123456789abcdef0123\n", 0o600)
            .unwrap()
            .unwrap();
        assert_eq!(good.key.unwrap().bytes, b"0123456789abcdef0123".to_vec());
        let e = with_key("short", b"0123456789\n", 0o600)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--sync-key-file: ") && e.contains("at least 16"),
            "{e}"
        );
        let e = with_key("open", b"0123456789abcdef0123", 0o644)
            .unwrap_err()
            .to_string();
        assert!(e.contains("readable or writable by every user"), "{e}");
        let l = Layer {
            sync_key_file: Some(sourced(dir.join("missing"), "--sync-key-file")),
            ..layer(Some("10.9.0.1:4790"), &["10.9.0.2:4790"])
        };
        assert!(message(&l, Some(&n)).contains("No such file"));
        // Debug never shows the secret.
        let k = SyncKey {
            path: "k".into(),
            bytes: b"secretsecretsecret".to_vec(),
        };
        assert!(!format!("{k:?}").contains("secret"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
