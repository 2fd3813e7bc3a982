//! `cargo bench` in the root package: says where the benches are.
//!
//! The criterion benches of the hot path are the `shmbus-benches` package (benches/Cargo.toml):
//! as benches of this package they would share its dev-dependencies, which switch on the
//! test-only `crash-points` feature, and measure a library that users never build.

fn main() {
    println!(
        "shmbus: the criterion benches are a package of their own: cargo bench -p shmbus-benches\n\
         (the latency benchmark between processes: cargo run --release -- bench)"
    );
}
