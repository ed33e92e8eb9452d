pub mod media;
pub mod sip;
