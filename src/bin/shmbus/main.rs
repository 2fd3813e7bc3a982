//! `shmbus`: the command line of the shmbus message bus.
//!
//! `bench` (the multi-process latency benchmark) lives in `bench/`; the operator subcommands
//! (ls, info, pub, sub, hz, create, rm, gc, doctor) live in `cmd/`, one file each, flattened into
//! [`Command`] through `cmd::Command`.

mod bench;
mod cmd;

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
