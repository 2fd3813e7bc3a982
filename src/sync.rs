//! The one place that names atomic types: std's in normal builds, loom's under `--cfg loom`.
//!
//! Every other module takes its atomics from here (clippy's `disallowed-types` enforces it), so
//! the loom models in `crate::loom_tests` check the same code that runs in production.
#![allow(clippy::disallowed_types)]

#[cfg(not(loom))]
pub(crate) mod atomic {
    pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
}

#[cfg(loom)]
pub(crate) mod atomic {
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
}
