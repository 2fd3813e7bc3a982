//! The one place that names atomic types: std's in normal builds, loom's under `--cfg loom`.
//!
//! Every other module takes its atomics from here (`.ci/run` fails if any other file under
//! `src/` names `std::sync::atomic`), so the loom models in `crate::loom_tests` check the same
//! code that runs in production.

#[cfg(not(loom))]
pub(crate) mod atomic {
    pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, compiler_fence, fence};
}

#[cfg(loom)]
pub(crate) mod atomic {
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
    // Loom has no compiler fence. It is used only on the membarrier wake path, which loom cannot
    // model (see `wait.rs`) and the models never take.
    pub(crate) use std::sync::atomic::compiler_fence;
}
