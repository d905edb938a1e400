//! The `rookery` binary: read settings, set up logs and traces, run a node until it is stopped.
//!
//! `rookery healthcheck` instead asks the node configured by the same environment for its
//! `/healthz` and exits 0 when it answers 200, so a container image needs no curl or shell;
//! `rookery chat URL ...` is the terminal client (see `chat`).

use std::process::ExitCode;

use rookery::{chat, healthcheck, settings::Settings, startup::Application, telemetry::init_telemetry};

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("healthcheck") => healthcheck::run(),
        Some("chat") => match chat::parse(std::env::args().skip(2)) {
            Ok(args) => chat::run(args),
            Err(usage) => {
                eprintln!("rookery chat: {usage}");
                ExitCode::from(2)
            }
        },
        _ => serve(),
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
