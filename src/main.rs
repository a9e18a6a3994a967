//! The `zoomgate` binary: parses the command line and hands over to [`zoomgate::cli`].

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: the request path allocates many small JSON and protobuf
/// values from every worker thread, and glibc's arena lock showed up contended in profiles
/// (about 45% less CPU per request in `cargo bench --bench gateway`, see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    zoomgate::cli::Cli::parse().run().await
}
