//! One module per subcommand.

pub mod build;
pub mod image;
pub mod measure;
pub mod policy;
pub mod verify;
