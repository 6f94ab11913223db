//! The translation log read back: the binding of a public endpoint at a
//! past time. Each binding is a "created" line and, once it is gone, a
//! "deleted" line with the same protocol, inside and public endpoint; a
//! public port passes from binding to binding over time, never held by two
//! at once. Under block allocation the log has a line per port block
//! instead ("block-allocated", "block-released": inside address, pool
//! address, ports): the holder of a port is the holder of its block.
use std::{
    collections::HashMap,
    io::BufRead,
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use serde::Deserialize;

use super::{Holder, Source};
use crate::agent::clock;

#[derive(Deserialize)]
struct Line {
    time: String,
    event: String,
    /// Binding lines only.
    #[serde(default)]
    proto: String,
    inside: String,
    public: String,
    /// Block lines only: `first-last`.
    #[serde(default)]
    ports: String,
}

/// Whether block line `r` (pool address, `first-last`) covers `public`
/// (`ADDR:PORT`).
fn block_covers(r: &Line, public: &str) -> bool {
    let Some((addr, port)) = public.rsplit_once(':') else {
        return false;
    };
    let (Ok(port), Some((lo, hi))) = (port.parse::<u16>(), r.ports.split_once('-')) else {
        return false;
    };
    r.public == addr
        && lo.parse::<u16>().is_ok_and(|lo| lo <= port)
        && hi.parse::<u16>().is_ok_and(|hi| port <= hi)
}

/// The bindings of `public` (`ADDR:PORT`) of `protos` that held it at
/// `at`, from the log lines in `log`. A binding whose deletion the log does
/// not have (it still lives, or the log ends first) counts as held from its
/// creation on. Lines that are not log records are skipped.
pub fn held_at(
    log: impl BufRead,
    public: &str,
    protos: &[&str],
    at: SystemTime,
) -> anyhow::Result<Vec<Holder>> {
    // Open bindings of this public endpoint, by (proto, inside): when made.
    let mut open: HashMap<(String, String), SystemTime> = HashMap::new();
    // Open blocks covering it, by (inside, ports): when allocated.
    let mut blocks: HashMap<(String, String), SystemTime> = HashMap::new();
    let mut found = Vec::new();
    for (n, line) in log.lines().enumerate() {
        let line = line.with_context(|| format!("reading the translation log, line {}", n + 1))?;
        let Ok(r) = serde_json::from_str::<Line>(&line) else {
            continue;
        };
        if r.event.starts_with("block-") {
            if !block_covers(&r, public) {
                continue;
            }
            let Ok(time) = humantime::parse_rfc3339_weak(&r.time) else {
                continue;
            };
            let key = (r.inside, r.ports);
            match r.event.as_str() {
                "block-allocated" => {
                    blocks.insert(key, time);
                }
                "block-released" => {
                    let since = blocks.remove(&key);
                    if since.unwrap_or(SystemTime::UNIX_EPOCH) <= at && at < time {
                        found.extend(block_holders(&key, public, protos, since, Some(time)));
                    }
                }
                _ => {}
            }
            continue;
        }
        if r.public != public || !protos.contains(&r.proto.as_str()) {
            continue;
        }
        let Ok(time) = humantime::parse_rfc3339_weak(&r.time) else {
            continue;
        };
        let key = (r.proto, r.inside);
        match r.event.as_str() {
            "created" => {
                open.insert(key, time);
            }
            "deleted" => {
                // A deletion whose creation the log lacks (it began before
                // the log did) held the port from some unknown time on.
                let since = open.remove(&key);
                let from = since.unwrap_or(SystemTime::UNIX_EPOCH);
                if from <= at && at < time {
                    found.push(holder(key, public, since, Some(time)));
                }
            }
            _ => {}
        }
    }
    for (key, since) in open {
        if since <= at {
            found.push(holder(key, public, Some(since), None));
        }
    }
    for (key, since) in blocks {
        if since <= at {
            found.extend(block_holders(&key, public, protos, Some(since), None));
        }
    }
    found.sort_by(|a, b| (a.proto, &a.since).cmp(&(b.proto, &b.since)));
    Ok(found)
}

fn holder(
    (proto, inside): (String, String),
    public: &str,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
) -> Holder {
    Holder {
        proto: match proto.as_str() {
            "tcp" => "tcp",
            "udp" => "udp",
            _ => "icmp",
        },
        public: public.to_string(),
        inside,
        source: Source::Log,
        ports: None,
        since: since.map(clock::rfc3339),
        until: until.map(clock::rfc3339),
    }
}

/// The holders, one per protocol asked, of a block `(inside, ports)`.
fn block_holders(
    (inside, ports): &(String, String),
    public: &str,
    protos: &[&str],
    since: Option<SystemTime>,
    until: Option<SystemTime>,
) -> Vec<Holder> {
    protos
        .iter()
        .map(|p| Holder {
            ports: Some(ports.clone()),
            inside: inside.clone(),
            source: Source::BlockLog,
            ..holder((p.to_string(), String::new()), public, since, until)
        })
        .collect()
}

/// A time as the command line gives it: RFC 3339 (`2026-12-05T03:00:00Z`,
/// or with a space and without the zone, read as UTC), or a duration ago
/// (`90s`, `15m`, `2h 30m`: humantime's forms).
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s.trim()) {
        return Ok(t);
    }
    let ago = s.trim().strip_suffix(" ago").unwrap_or(s.trim());
    match humantime::parse_duration(ago) {
        Ok(d) => Ok(SystemTime::now() - d.min(Duration::from_secs(100 * 365 * 86_400))),
        Err(_) => Err(format!(
            "{s:?} is neither an RFC 3339 time (2026-12-05T03:00:00Z) nor a duration ago (15m)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"time":"2026-12-05T10:00:00.000Z","event":"created","proto":"udp","inside":"10.0.0.2:5000","public":"198.51.100.1:5000"}
{"time":"2026-12-05T10:00:01.000Z","event":"created","proto":"tcp","inside":"10.0.0.3:6000","public":"198.51.100.1:5000"}
not a record
{"time":"2026-12-05T10:05:00.000Z","event":"deleted","proto":"udp","inside":"10.0.0.2:5000","public":"198.51.100.1:5000","reason":"expired"}
{"time":"2026-12-05T10:06:00.000Z","event":"created","proto":"udp","inside":"10.0.0.9:7000","public":"198.51.100.1:5000"}
{"time":"2026-12-05T10:07:00.000Z","event":"deleted","proto":"udp","inside":"10.0.0.7:1","public":"198.51.100.1:6000","reason":"expired"}
"#;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    fn who(public: &str, protos: &[&str], t: &str) -> Vec<(String, Option<String>)> {
        held_at(LOG.as_bytes(), public, protos, at(t))
            .unwrap()
            .into_iter()
            .map(|h| (format!("{} {}", h.proto, h.inside), h.until))
            .collect()
    }

    #[test]
    fn a_port_passes_from_binding_to_binding() {
        let p = "198.51.100.1:5000";
        assert_eq!(
            who(p, &["udp"], "2026-12-05T10:03:00Z"),
            [(
                "udp 10.0.0.2:5000".to_string(),
                Some("2026-12-05T10:05:00.000Z".to_string())
            )]
        );
        // Between two bindings: nobody; the deletion's instant is not held.
        assert!(who(p, &["udp"], "2026-12-05T10:05:30Z").is_empty());
        assert!(who(p, &["udp"], "2026-12-05T10:05:00Z").is_empty());
        // Still open at the end of the log: held from its creation on.
        assert_eq!(
            who(p, &["udp"], "2026-12-06T00:00:00Z"),
            [("udp 10.0.0.9:7000".to_string(), None)]
        );
        // Before anything was made.
        assert!(who(p, &["udp"], "2026-12-05T09:59:59Z").is_empty());
    }

    #[test]
    fn protocols_are_apart_unless_both_are_asked() {
        let p = "198.51.100.1:5000";
        let both = who(p, &["tcp", "udp"], "2026-12-05T10:03:00Z");
        assert_eq!(both.len(), 2, "{both:?}");
        assert_eq!(who(p, &["tcp"], "2026-12-05T10:03:00Z").len(), 1);
    }

    #[test]
    fn a_deletion_without_its_creation_held_the_port_until_then() {
        let p = "198.51.100.1:6000";
        assert_eq!(
            who(p, &["udp"], "2026-12-05T10:06:59Z"),
            [(
                "udp 10.0.0.7:1".to_string(),
                Some("2026-12-05T10:07:00.000Z".to_string())
            )]
        );
        assert!(who(p, &["udp"], "2026-12-05T10:07:01Z").is_empty());
    }

    #[test]
    fn a_port_belongs_to_whoever_held_its_block() {
        let log = r#"{"time":"2026-12-05T10:00:00.000Z","event":"block-allocated","inside":"10.0.0.5","public":"198.51.100.1","ports":"1024-1279"}
{"time":"2026-12-05T10:10:00.000Z","event":"block-released","inside":"10.0.0.5","public":"198.51.100.1","ports":"1024-1279","reason":"unused"}
{"time":"2026-12-05T10:11:00.000Z","event":"block-allocated","inside":"10.0.0.6","public":"198.51.100.1","ports":"1024-1279"}
"#;
        let who = |public: &str, t: &str| -> Vec<(String, &'static str, Option<String>)> {
            held_at(log.as_bytes(), public, &["udp", "tcp"], at(t))
                .unwrap()
                .into_iter()
                .map(|h| (h.inside, h.proto, h.until))
                .collect()
        };
        let first = who("198.51.100.1:1100", "2026-12-05T10:05:00Z");
        assert_eq!(first.len(), 2, "one per protocol asked: {first:?}");
        assert!(
            first.iter().all(|(i, _, until)| i == "10.0.0.5"
                && until.as_deref() == Some("2026-12-05T10:10:00.000Z"))
        );
        assert!(who("198.51.100.1:1100", "2026-12-05T10:10:30Z").is_empty());
        assert!(who("198.51.100.1:1280", "2026-12-05T10:05:00Z").is_empty());
        assert!(who("198.51.100.9:1100", "2026-12-05T10:05:00Z").is_empty());
        let now = who("198.51.100.1:1279", "2026-12-05T12:00:00Z");
        assert!(
            now.iter()
                .all(|(i, _, until)| i == "10.0.0.6" && until.is_none())
        );
    }

    #[test]
    fn times_are_rfc_3339_or_a_while_ago() {
        assert_eq!(
            parse_time("2026-12-05T10:00:00Z").unwrap(),
            at("2026-12-05T10:00:00Z")
        );
        assert_eq!(
            parse_time("2026-12-05 10:00:00").unwrap(),
            at("2026-12-05T10:00:00Z")
        );
        let then = parse_time("15m").unwrap();
        let ago = SystemTime::now().duration_since(then).unwrap();
        assert!(ago >= Duration::from_secs(900) && ago < Duration::from_secs(960));
        assert!(
            parse_time("yesterday-ish")
                .unwrap_err()
                .contains("RFC 3339")
        );
    }
}
