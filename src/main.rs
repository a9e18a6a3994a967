//! The `zoomgate` binary: parses the command line and hands over to [`zoomgate::cli`].

use std::process::ExitCode;

use clap::Parser;

/// Exit code of a usage error (BSD `EX_USAGE`), as for a bad config.
const EXIT_USAGE: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    match zoomgate::cli::Cli::try_parse() {
        Ok(cli) => cli.run().await,
        Err(error) => {
            // `--help` and `--version` print to stdout and succeed; the rest is bad usage.
            let code = if error.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = error.print();
            ExitCode::from(code)
        }
    }
}
