//! The `zoomgate` binary: parses the command line and hands over to [`zoomgate::cli`].

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    zoomgate::cli::Cli::parse().run().await
}
