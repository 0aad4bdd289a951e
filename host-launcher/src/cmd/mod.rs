//! One module per subcommand.

pub mod build;
pub mod bundle;
pub mod generate;
pub mod image;
pub mod init;
pub mod measure;
pub mod policy;
pub mod verify;
