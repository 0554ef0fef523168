//! What minirun remembers about a container between commands: its validated
//! id, its state directory under `--root`, and the lock that serialises
//! concurrent commands on one container.

mod id;
mod state;
mod status;

pub use id::{validate_id, IdError};
pub use state::{ContainerDir, ContainerRecord, StateError};
pub use status::{process_start_time, Status};
