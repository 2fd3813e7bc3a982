//! Builds `tests/c/test_shmbus.c` with the system C compiler and runs it, so
//! `cargo test --workspace` runs the C tests (and `tests/cpp/test_shmbus.cpp`, the C++
//! wrapper's tests, built with `-std=c++17` and the same warnings and sanitizers). Two C builds:
//!
//! * against `libshmbus.a` with `-fsanitize=address,undefined` (ASan/UBSan see the C side and
//!   every allocation the library makes; the Rust code itself is not instrumented);
//! * against `libshmbus.so` without sanitizers (checks the shared library and its exports).
//!
//! Both use `-std=c11 -Wall -Wextra -Werror -pedantic`. Skipped, with a message, if `cc` (or
//! `c++`) is missing. The C program bounds itself with alarm(); this side kills it after 3 minutes.

mod common;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::*;

/// One C or C++ test program at a time: each has a full-speed publisher and a busy child of its
/// own, and the machine may have two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run(exe: &std::path::Path, envs: &[(&str, &str)]) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let child = Command::new(exe)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the C tests");
    // The programs remove their buses as they go; one stopped half way (its alarm, a sanitizer
    // halting it, a failed check, our watchdog) leaves them: `ctest-PID-*` and `cpptest-PID-*`,
    // removed when this guard drops, also if the watchdog panics.
    let _cleanup = BusesOf(child.id());
    let out = wait_bounded(child, Duration::from_secs(180), "the tests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "C tests failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(" passed, 0 failed"),
        "unexpected C test output:\n{stdout}"
    );
}

/// Removes, when dropped, the buses the C or C++ test program with this process id left.
struct BusesOf(u32);

impl Drop for BusesOf {
    fn drop(&mut self) {
        remove_buses_of(self.0);
    }
}

/// Removes the buses a C or C++ test program with process id `pid` left in `/dev/shm`.
fn remove_buses_of(pid: u32) {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(bus) = name.strip_prefix("shmbus.") else {
            continue;
        };
        if bus.starts_with(&format!("ctest-{pid}-")) || bus.starts_with(&format!("cpptest-{pid}-"))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

const SANITIZERS: &[&str] = &[
    "-O1",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=undefined",
    "-fno-omit-frame-pointer",
];

const SANITIZER_ENV: &[(&str, &str)] = &[
    (
        "ASAN_OPTIONS",
        "detect_leaks=1:abort_on_error=0:halt_on_error=1",
    ),
    ("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
];

#[test]
fn c_tests_with_address_and_undefined_sanitizers() {
    let Some(cc) = compiler("CC", "cc") else {
        return;
    };
    let exe = out_dir("c").join("test_shmbus_asan");
    let mut cmd = Command::new(cc);
    cmd.args(C_FLAGS)
        .args(SANITIZERS)
        .arg("-I")
        .arg(ffi_dir().join("include"))
        .arg(ffi_dir().join("tests/c/test_shmbus.c"))
        .arg(static_lib())
        .args(STATIC_LIB_DEPS)
        .arg("-o")
        .arg(&exe);
    compile(cmd);
    run(&exe, SANITIZER_ENV);
}

#[test]
fn c_tests_against_the_shared_library() {
    let Some(cc) = compiler("CC", "cc") else {
        return;
    };
    let lib_dir = profile_dir();
    assert!(
        lib_dir.join("libshmbus.so").exists(),
        "libshmbus.so is missing"
    );
    let exe = out_dir("c").join("test_shmbus_shared");
    let mut cmd = Command::new(cc);
    cmd.args(C_FLAGS)
        .arg("-I")
        .arg(ffi_dir().join("include"))
        .arg(ffi_dir().join("tests/c/test_shmbus.c"))
        .arg("-L")
        .arg(&lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-lshmbus", "-lpthread", "-o"])
        .arg(&exe);
    compile(cmd);
    run(&exe, &[]);
}

#[test]
fn cpp_wrapper_tests_with_address_and_undefined_sanitizers() {
    let Some(cxx) = compiler("CXX", "c++") else {
        return;
    };
    let exe = out_dir("cpp").join("test_shmbus_cpp");
    let mut cmd = Command::new(cxx);
    cmd.args(CXX_FLAGS)
        .args(SANITIZERS)
        .arg("-I")
        .arg(ffi_dir().join("include"))
        .arg(ffi_dir().join("tests/cpp/test_shmbus.cpp"))
        .arg(static_lib())
        .args(STATIC_LIB_DEPS)
        .arg("-o")
        .arg(&exe);
    compile(cmd);
    run(&exe, SANITIZER_ENV);
}
