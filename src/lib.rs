pub mod call;
pub mod media;
pub mod sip;
