pub mod config;
pub mod places;
