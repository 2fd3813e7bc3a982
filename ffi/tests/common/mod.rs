//! Helpers shared by the tests that compile C and C++ against the library.

#![allow(dead_code)] // each test binary uses part of this module

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Strict C11: every warning is an error.
pub const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"];

/// Strict C++17: every warning is an error.
pub const CXX_FLAGS: &[&str] = &[
    "-std=c++17",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-g",
];

/// What a program linked against `libshmbus.a` needs besides it (the Rust runtime's libraries).
pub const STATIC_LIB_DEPS: &[&str] = &["-lpthread", "-ldl", "-lm"];

/// `CARGO_TARGET_DIR/<profile>`, where cargo put `libshmbus.{a,so}` for this test run (the test
/// binary lives in its `deps/` folder).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf();
    build_c_libraries(&dir);
    dir
}

/// Builds `libshmbus.{a,so}` into `dir` (once per test process). The crate is only
/// `cdylib` + `staticlib` (an `rlib` named `shmbus` would collide with the core crate's), and
/// cargo does not build those for integration tests, so the tests ask cargo for them.
fn build_c_libraries(dir: &Path) {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let profile = dir
            .file_name()
            .and_then(|p| p.to_str())
            .expect("profile dir");
        let target = dir.parent().expect("target dir");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "shmbus-ffi", "--lib"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(ffi_dir());
        if profile == "release" {
            cmd.arg("--release");
        } else if profile != "debug" {
            cmd.args(["--profile", profile]);
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p shmbus-ffi failed");
    });
}

/// The ffi crate's folder.
pub fn ffi_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A folder for compiled test programs, inside the target dir.
pub fn out_dir(what: &str) -> PathBuf {
    let dir = profile_dir().join("ffi-tests").join(what);
    std::fs::create_dir_all(&dir).expect("create output folder");
    dir
}

/// The C (or C++) compiler: `$CC` / `$CXX`, else `cc` / `c++`; `None` (with a message) if it
/// cannot be run, so the caller can skip.
pub fn compiler(env: &str, default: &str) -> Option<String> {
    let cc = std::env::var(env).unwrap_or_else(|_| default.to_owned());
    match Command::new(&cc)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Some(cc),
        _ => {
            eprintln!("SKIPPED: no working `{cc}` (set {env} to a compiler to run this test)");
            None
        }
    }
}

/// The static library's path; panics with a hint if cargo did not build it.
pub fn static_lib() -> PathBuf {
    let lib = profile_dir().join("libshmbus.a");
    assert!(
        lib.exists(),
        "{} is missing; build with `cargo build -p shmbus-ffi`",
        lib.display()
    );
    lib
}

/// Runs a compiler command; panics with its output if it fails.
pub fn compile(mut cmd: Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "compilation failed: {cmd:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for `child` at most `limit` (a watchdog: past it, the child is killed and the test
/// fails), collecting its output.
pub fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("wait_with_output"),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait_with_output");
                panic!(
                    "{what} did not finish within {limit:?}; killed.\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
