//! The `c` transport's echo: `c/echo.c`, compiled at bench time with the system C compiler
//! against the static C library, so the table shows shmbus Rust↔Rust next to Rust↔C.
//!
//! * **Compiler**: `$CC`, else `cc`.
//! * **Library**: `$SHMBUS_BENCH_LIB` (the `libshmbus.a` file, or the folder holding it), else
//!   `libshmbus.a` next to the running `shmbus` executable: `cargo build [--release] -p
//!   shmbus-ffi` puts it in the same `target/<profile>/` folder as `cargo build --bin shmbus`.
//! * **Header**: `$SHMBUS_BENCH_INCLUDE` (the folder holding `shmbus.h`), else `ffi/include` of
//!   the source tree this binary was built from.
//!
//! The source is embedded in the binary and written, compiled and run inside the run's private
//! directory, which is removed at the end. Compiling and a probe (the program opens a bus made
//! by this build: a library of another build is refused with a layout error) are bounded in
//! time. Anything missing or failing skips the `c` runs with the reason; it never fails the
//! benchmark.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The C source, embedded so the benchmark does not depend on the source tree at run time.
const SOURCE: &str = include_str!("c/echo.c");

/// Longest the compiler may take.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest the probe (and `cc --version`) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A built C echo.
pub struct CEcho {
    /// The executable, inside the run directory.
    pub exe: PathBuf,
    /// What it was built from, for the header: compiler and library.
    pub description: String,
}

/// Builds the C echo in `dir` and checks it can attach to this build's buses.
///
/// # Errors
/// Why the `c` transport cannot run here (no compiler, no library, a failed compile or probe).
pub fn build(dir: &Path) -> Result<CEcho, String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut version = Command::new(&cc);
    version.arg("--version");
    match run_bounded(&mut version, dir, "cc-version", PROBE_TIMEOUT) {
        Ok(_) => {}
        Err(e) => return Err(format!("no working C compiler `{cc}` ({e}); set CC")),
    }
    let lib = library()?;
    let include = include_dir()?;
    let src = dir.join("c-echo.c");
    let exe = dir.join("c-echo");
    fs::write(&src, SOURCE).map_err(|e| format!("write {src:?}: {e}"))?;
    let mut compile = Command::new(&cc);
    compile
        .args(["-std=c11", "-O2", "-I"])
        .arg(&include)
        .arg(&src)
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe);
    run_bounded(&mut compile, dir, "cc", COMPILE_TIMEOUT)
        .map_err(|e| format!("compiling the C echo against {lib:?} failed: {e}"))?;
    probe(&exe, dir).map_err(|e| {
        format!(
            "the C echo cannot attach to this build's buses ({e}); rebuild the library \
             (cargo build -p shmbus-ffi, --release for a release shmbus) or set SHMBUS_BENCH_LIB"
        )
    })?;
    Ok(CEcho {
        exe,
        description: format!("{cc} -O2, {}", relative(&lib).display()),
    })
}

/// `libshmbus.a`: `$SHMBUS_BENCH_LIB`, else next to this executable.
fn library() -> Result<PathBuf, String> {
    let lib = match std::env::var_os("SHMBUS_BENCH_LIB") {
        Some(p) => {
            let p = PathBuf::from(p);
            if p.is_dir() { p.join("libshmbus.a") } else { p }
        }
        None => std::env::current_exe()
            .map_err(|e| format!("current_exe: {e}"))?
            .parent()
            .ok_or("the executable has no folder")?
            .join("libshmbus.a"),
    };
    match lib.is_file() {
        true => Ok(lib),
        false => Err(format!(
            "no C library at {} (build it with cargo build -p shmbus-ffi, --release for a \
             release shmbus, or set SHMBUS_BENCH_LIB)",
            lib.display()
        )),
    }
}

/// The folder holding `shmbus.h`.
fn include_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os("SHMBUS_BENCH_INCLUDE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("ffi/include"),
        PathBuf::from,
    );
    match dir.join("shmbus.h").is_file() {
        true => Ok(dir),
        false => Err(format!(
            "no shmbus.h in {} (set SHMBUS_BENCH_INCLUDE)",
            dir.display()
        )),
    }
}

/// Runs the echo's `--probe` against a bus made by this build.
fn probe(exe: &Path, dir: &Path) -> Result<(), String> {
    let name = format!("bench-{}-0", std::process::id());
    let bus = shmbus::Bus::create(&name, &shmbus::BusConfig::default())
        .map_err(|e| format!("create bus {name}: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--probe").arg(&name);
    let result = run_bounded(&mut cmd, dir, "probe", PROBE_TIMEOUT);
    drop(bus);
    let _ = shmbus::Bus::remove(&name);
    result.map(|_| ())
}

/// Runs `cmd` with its output in files of `dir` (`<tag>.out`, `<tag>.err`), killing it after
/// `timeout`. Returns its stdout; errors carry the first lines of its stderr.
fn run_bounded(
    cmd: &mut Command,
    dir: &Path,
    tag: &str,
    timeout: Duration,
) -> Result<String, String> {
    let (out_path, err_path) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {timeout:?}, killed"));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.to_string());
            }
        }
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    match status.success() {
        true => Ok(stdout),
        false => {
            // The compiler's errors rather than its warnings, if it says which are which.
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let errors: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.contains("error"))
                .collect();
            let shown = if errors.is_empty() { lines } else { errors };
            let shown: Vec<&str> = shown.into_iter().take(3).collect();
            Err(format!("{status}: {}", shown.join(" | ")))
        }
    }
}

/// `path` relative to the current directory when it is inside it (so a report pasted into the
/// docs names `target/release/libshmbus.a`, not the machine's directory layout).
fn relative(path: &Path) -> &Path {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok())
        .unwrap_or(path)
}
