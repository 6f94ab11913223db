//! The layout version of pinned state: written at attach, checked before a
//! restarted agent adopts what an earlier one pinned. A different version
//! means the maps may hold keys or values this binary would misread, so
//! adoption is refused with a message that says what to do.
use std::path::Path;

use anyhow::{Context as _, bail};
use nat_common::LAYOUT_VERSION;

use crate::tables::Tables;

/// Records this binary's layout version in the attachment in `dir`.
pub fn write(dir: &Path) -> anyhow::Result<()> {
    let mut v = Tables::at(dir).version()?;
    v.set(0, LAYOUT_VERSION, 0)
        .with_context(|| format!("writing the layout version into {}", dir.display()))
}

/// The layout version pinned in `dir`; `None` when the state predates
/// layout versions (no VERSION pin).
pub fn read(dir: &Path) -> anyhow::Result<Option<u32>> {
    let tables = Tables::at(dir);
    if !tables.has_version() {
        return Ok(None);
    }
    let v = tables.version()?;
    Ok(Some(v.get(&0, 0)?))
}

/// Refuses state this binary cannot read: another layout version, or a
/// map missing.
pub fn check(dir: &Path, ifname: &str) -> anyhow::Result<()> {
    let advice = format!(
        "`xnat detach {ifname}` and attach again (this drops live flows), or keep running the xnat that made it"
    );
    match read(dir)? {
        Some(LAYOUT_VERSION) => {}
        Some(v) => bail!(
            "{ifname}: the pinned state in {} has layout version {v}, this xnat {} uses layout {LAYOUT_VERSION}; \
             refusing to adopt it rather than misread it: {advice}",
            dir.display(),
            env!("CARGO_PKG_VERSION"),
        ),
        None => bail!(
            "{ifname}: the pinned state in {} has no layout version (made by an older xnat); \
             this xnat {} uses layout {LAYOUT_VERSION}; refusing to adopt it: {advice}",
            dir.display(),
            env!("CARGO_PKG_VERSION"),
        ),
    }
    if let Some(m) = Tables::at(dir).missing() {
        bail!(
            "{ifname}: the pinned state in {} lacks map {m} although its layout version matches; \
             refusing to adopt it: {advice}",
            dir.display()
        );
    }
    Ok(())
}
