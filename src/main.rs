use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    paygate::cli::run(paygate::cli::Cli::parse()).await
}
