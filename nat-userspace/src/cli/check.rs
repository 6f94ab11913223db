//! `xnat check --config FILE`: everything `attach` would check about the
//! file and the flags (syntax, keys, values, how they fit together, the
//! interfaces), without attaching. Exit 0 if it would be accepted, 1 if
//! not (with the first problem, naming file, line and key).
use std::process::ExitCode;

use super::attach;

pub fn run(a: attach::Args) -> anyhow::Result<ExitCode> {
    let settings = attach::settings_from(a.config.as_deref(), a.layer())?;
    attach::warn_about(&settings);
    let what = a
        .config
        .as_ref()
        .map_or("the command line".to_string(), |p| p.display().to_string());
    println!(
        "xnat: {what} is valid: interface {}, {}",
        settings.ifname,
        attach::describe(&settings)
    );
    Ok(ExitCode::SUCCESS)
}
