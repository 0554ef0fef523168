//! `minirun run --explain`.
use super::engine::store::NetworkMode;
use super::engine::{Engine, EngineError};
use super::run_spec::RunConfig;

pub fn print(_engine: &Engine, _config: &RunConfig, _mode: &NetworkMode) -> Result<(), EngineError> {
    Err(EngineError::Other("--explain is being written".into()))
}
