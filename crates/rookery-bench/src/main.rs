//! `rookery-bench`: a load generator that checks every delivery. Exit 1 when deliveries were
//! lost, duplicated or out of order, connections failed or dropped, or the nodes answered with
//! errors; 2 when the run could not start.
//!
//! It opens connections spread evenly over the node URLs and rooms (`run`), each a task that
//! joins its room and, for the senders, sends at a fixed rate with its send time in the body
//! (`connection`), over a lean WebSocket client of its own (`wire`). Every received message is
//! checked: its latency, its order (ids strictly increase per session), duplicates (each
//! sender's sequence) and, at the end, loss (every acked message times its room's members),
//! all added up in the `tally`. `report` prints the outcome; `process_stats` reads the nodes'
//! RSS and CPU time.

mod args;
mod connection;
mod process_stats;
mod report;
mod run;
mod tally;
mod wire;

use std::process::ExitCode;

use args::BenchArgs;

#[tokio::main]
async fn main() -> ExitCode {
    // `--help` and `--version` print and exit 0; a bad command line prints the usage and exits 2.
    let args = args::parse(std::env::args_os()).unwrap_or_else(|error| error.exit());
    let report = match run::run(&args, |line| eprintln!("{line}")).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("rookery-bench: {error}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => eprintln!("rookery-bench: cannot write the report: {error}"),
        }
    } else {
        println!("{report}");
    }
    if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
