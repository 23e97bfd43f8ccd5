pub mod places;
pub mod protocol;
