//! The two YAML files an operator writes, read and checked: the configuration file
//! ([`config_file`]) and the scheduler file ([`scheduler_file`], one job each in
//! [`scheduler_job`]), with the YAML subset they are written in, `${VAR}` expansion and the
//! file-and-line problems every check reports.

pub mod config_file;
pub(crate) mod expand;
pub(crate) mod problems;
pub mod scheduler_file;
pub(crate) mod scheduler_job;
pub(crate) mod yaml;
