//! The `rookery` binary: read settings, set up logs and traces, run a node until it is stopped.

use std::process::ExitCode;

use rookery::{settings::Settings, startup::Application, telemetry::init_telemetry};

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
    let _telemetry = init_telemetry(settings.log_format, &settings.node_id)?;
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}
