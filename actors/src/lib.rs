pub mod config;
pub mod log;
pub mod places;
pub mod protocol;
