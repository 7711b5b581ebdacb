//! CLI commands other than argument parsing (which lives in main.rs).

pub mod init_secret;
pub mod migrate;
pub mod status;
