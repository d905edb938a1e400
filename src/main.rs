//! The `rookery` binary: read settings, set up logging, run a node until it is stopped.

use std::process::ExitCode;

use rookery::{settings::Settings, startup::Application, telemetry::init_logging};

#[actix_web::main]
async fn main() -> ExitCode {
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
    init_logging(settings.log_format);
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}
