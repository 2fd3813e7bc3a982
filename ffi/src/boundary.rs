//! The boundary every exported function goes through: NULL checks and the panic guard.

/// Runs `$body` (a block of type `Result<(), Failure>`) inside `catch_unwind` and turns the
/// outcome into a `shmbus_result`, recording the error message for `shmbus_last_error_message`.
/// `return Err(..)` and `?` leave the body early.
macro_rules! ffi_boundary {
    ($body:block) => {
        $crate::error::finish(::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
            || -> ::std::result::Result<(), $crate::error::Failure> { $body },
        )))
    };
}

/// Returns `SHMBUS_RESULT_NULL_PARAMETER` (from the enclosing `ffi_boundary!` body) if any of
/// the named pointers is NULL.
macro_rules! check_null {
    ($($p:ident),+ $(,)?) => {
        $(
            if $p.is_null() {
                return Err($crate::error::Failure::null(stringify!($p)));
            }
        )+
    };
}
