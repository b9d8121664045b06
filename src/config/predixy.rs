//! predixy-style config files, as users already write them.

use super::{Config, ConfigProblem};

pub(super) fn parse(_text: &str) -> Result<Config, Vec<ConfigProblem>> {
    Ok(Config::default())
}
