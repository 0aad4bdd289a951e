//! One module per subcommand.

pub mod build;
pub mod image;
pub mod measure;
pub mod verify;
