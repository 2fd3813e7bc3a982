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

/// The `len` bytes at `data`, a message passed in. `data` may be NULL only when `len` is 0 (an
/// empty message); otherwise NULL is `SHMBUS_RESULT_NULL_PARAMETER`, naming `what`.
///
/// # Safety
/// `data` is NULL or valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    data: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], crate::error::Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(crate::error::Failure::null(what));
    }
    // SAFETY: non-NULL (checked) and valid for reads of `len` bytes for 'a (caller's contract).
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// The `len` bytes at `data`, a buffer to fill. As [`bytes_arg`]: NULL only when `len` is 0 (an
/// empty buffer, such as an empty `std::vector`'s `data()`).
///
/// # Safety
/// `data` is NULL or valid for writes of `len` bytes for `'a`, and not read through another
/// pointer meanwhile.
pub(crate) unsafe fn bytes_mut_arg<'a>(
    data: *mut u8,
    len: usize,
    what: &str,
) -> Result<&'a mut [u8], crate::error::Failure> {
    if len == 0 {
        return Ok(&mut []);
    }
    if data.is_null() {
        return Err(crate::error::Failure::null(what));
    }
    // SAFETY: non-NULL (checked) and valid for writes of `len` bytes for 'a, with no other
    // access meanwhile (caller's contract).
    Ok(unsafe { std::slice::from_raw_parts_mut(data, len) })
}
