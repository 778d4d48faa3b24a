//! What runs for a fire time of a file job: a process ([`command_job`]) whose arguments,
//! shell string and environment are filled in from placeholders ([`placeholder`]).

pub mod command_job;
pub(crate) mod placeholder;
