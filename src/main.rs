//! The `rookery` binary: read the command line (`cli`); then, by default, read settings, set up
//! logs and traces, and run a node until it is stopped.
//!
//! `rookery healthcheck` instead asks the node configured by the same environment for its
//! `/healthz` and exits 0 when it answers 200, so a container image needs no curl or shell;
//! `rookery chat URL ...` is the terminal client (see `chat`).

use std::process::ExitCode;

use clap::Parser;
use rookery::{
    chat,
    cli::{Cli, Command},
    healthcheck,
    settings::Settings,
    startup::Application,
    telemetry::init_telemetry,
};

fn main() -> ExitCode {
    // `--help` and `--version` print and exit 0; a bad command line prints the usage and exits 2.
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Chat(args) => chat::run(args),
        Command::Healthcheck => healthcheck::run(),
    }
}

#[actix_web::main]
async fn serve() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A start-up error is for the operator: the message, not a backtrace.
            eprintln!("rookery: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let _telemetry = init_telemetry(settings.log_format, &settings.node_id)?;
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}
