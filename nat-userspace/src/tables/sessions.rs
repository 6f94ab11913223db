//! Reading every live session, wherever it is held: a mapping's first
//! session lives in its `NAPT_OUT` value, the others in `SESSIONS`.
use std::path::Path;

use nat_common::{EndpointKey, Mapping, Session, SessionKey};

use crate::tables::Tables;

/// All mappings (`NAPT_OUT`, forwards included) and all live sessions, in
/// `SESSIONS`' key/value form.
pub struct Snapshot {
    pub mappings: Vec<(EndpointKey, Mapping)>,
    pub sessions: Vec<(SessionKey, Session)>,
}

pub fn read(dir: &Path) -> anyhow::Result<Snapshot> {
    let tables = Tables::at(dir);
    let mappings = tables.napt_out()?.lookup_all()?;
    let mut sessions = tables.sessions()?.lookup_all()?;
    sessions.extend(mappings.iter().filter_map(|(k, m)| m.first_session(k)));
    Ok(Snapshot { mappings, sessions })
}
