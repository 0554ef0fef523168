//! `minirun run --explain`.
use super::engine::store::NetworkMode;
use super::engine::{Engine, EngineError};
use super::run_args::RunArgs;

pub fn print(_engine: &Engine, _args: &RunArgs, _mode: &NetworkMode) -> Result<(), EngineError> {
    Err(EngineError::Other("--explain is being written".into()))
}
