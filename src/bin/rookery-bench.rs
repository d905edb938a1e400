//! The `rookery-bench` binary: parse the command line, run, print the report; exit 1 when
//! deliveries were lost, duplicated or out of order, connections failed or dropped, or the nodes
//! answered with errors, 2 when the run could not start.

use std::process::ExitCode;

use rookery::bench;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match bench::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let report = match bench::run(&args, |line| eprintln!("{line}")).await {
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
