//! `shmbus`: the command line of the shmbus message bus.
//!
//! Today it has `bench`, the multi-process latency benchmark; see `shmbus bench --help`.

mod bench;
mod cmd;
// Other subcommands (ls, info, pub, sub, create, rm, gc, doctor) live in `cmd/`, one file each:
// add `mod cmd;` here and one `Command` variant per subcommand below, dispatched in `main`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command line of the shmbus shared-memory message bus.
#[derive(Debug, Parser)]
#[command(name = "shmbus", version, about, propagate_version = true)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Measure one-way latency and throughput between processes, against the floor (shared cache
    /// line, futex) and the usual alternatives (pipe, Unix socket, TCP loopback).
    Bench(bench::BenchArgs),
    /// Internal: the other process of `shmbus bench` (started by `bench`, not by hand).
    #[command(name = "bench-child", hide = true)]
    BenchChild(bench::child::ChildArgs),
    /// ls, info, pub, sub, hz, create, rm, gc, doctor (see `cmd/`).
    #[command(flatten)]
    Tools(cmd::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Bench(args) => bench::run(args),
        Command::BenchChild(args) => bench::child::run(args),
        Command::Tools(cmd) => return cmd.run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmbus: {e}");
            ExitCode::FAILURE
        }
    }
}
