//! The only code that calls the operating system. Linux only for now.

#[cfg_attr(target_os = "linux", path = "linux.rs")]
mod imp;

pub use imp::monotonic_ns;
pub(crate) use imp::*;
