//! Reading every live session, wherever it is held: a mapping's first
//! session lives in its `NAPT_OUT` value, the others in `SESSIONS`.
use std::path::Path;

use nat_common::{EndpointKey, MAP_NAPT_OUT, MAP_SESSIONS, Mapping, Session, SessionKey};

use crate::{batch, pinned::RawMap};

/// All mappings (`NAPT_OUT`, forwards included) and all live sessions, in
/// `SESSIONS`' key/value form.
pub struct Snapshot {
    pub mappings: Vec<(EndpointKey, Mapping)>,
    pub sessions: Vec<(SessionKey, Session)>,
}

pub fn read(dir: &Path) -> anyhow::Result<Snapshot> {
    let mappings =
        batch::lookup_all::<EndpointKey, Mapping>(RawMap::open(dir, MAP_NAPT_OUT)?.fd())?;
    let mut sessions =
        batch::lookup_all::<SessionKey, Session>(RawMap::open(dir, MAP_SESSIONS)?.fd())?;
    sessions.extend(mappings.iter().filter_map(|(k, m)| m.first_session(k)));
    Ok(Snapshot { mappings, sessions })
}
