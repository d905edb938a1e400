//! The command lines of `rookery` and `rookery-bench` as a user meets them: help and version
//! answer and exit 0, anything unknown is refused with the usage and exit code 2, and the
//! settings `rookery --help` lists are the README's configuration table, default for default.

use std::process::{Command, Output};

use rookery::settings;

use crate::bench::bench_bin;

fn rookery(args: &[&str]) -> Output {
    // No node may start here: a command that served would hang the test until its timeout.
    Command::new(env!("CARGO_BIN_EXE_rookery")).args(args).output().expect("run rookery")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_answer_on_every_command_and_exit_0() {
    for args in [&["--help"][..], &["-h"], &["serve", "--help"], &["chat", "--help"], &["healthcheck", "--help"]] {
        let out = rookery(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("Usage: rookery"), "{args:?}: {}", text(&out.stdout));
    }
    for args in [&["--version"][..], &["-V"], &["chat", "--version"], &["healthcheck", "--version"]] {
        let out = rookery(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains(env!("CARGO_PKG_VERSION")), "{args:?}: {}", text(&out.stdout));
    }
}

#[test]
fn unknown_commands_and_arguments_exit_2_with_the_usage() {
    for args in [&["serv"][..], &["--bind", "127.0.0.1:0"], &["healthcheck", "now"], &["chat"]] {
        let out = rookery(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("Usage: rookery"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(text(&rookery(&["serv"]).stderr).contains("a similar subcommand exists: 'serve'"));
    let not_websocket = rookery(&["chat", "http://x/ws"]);
    assert_eq!(not_websocket.status.code(), Some(2));
    assert!(text(&not_websocket.stderr).contains("expected a ws:// or wss:// URL"));
}

#[test]
fn rookery_bench_answers_help_and_version_and_refuses_unknown_arguments() {
    let bench = |args: &[&str]| Command::new(bench_bin()).args(args).output().expect("run rookery-bench");
    for args in [&["--help"][..], &["--version"]] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("rookery-bench"), "{args:?}");
    }
    let unknown = bench(&["--frobnicate", "ws://127.0.0.1:1/ws"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("Usage: rookery-bench"), "{}", text(&unknown.stderr));
}

/// The README's configuration table, as written between its header row and the blank line.
fn readme_table() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("read README.md");
    let start = readme.find("| variable | default | meaning |").expect("the README has a configuration table");
    let table = &readme[start..];
    let end = table.find("\n\n").unwrap_or(table.len());
    format!("{}\n", &table[..end])
}

#[test]
fn the_readme_table_is_the_settings_table_and_rookery_help_lists_it() {
    let readme = readme_table();
    let expected = settings::markdown_table();
    if readme != expected {
        let differ: Vec<String> = expected
            .lines()
            .zip(readme.lines())
            .filter(|(ours, theirs)| ours != theirs)
            .map(|(ours, theirs)| format!("settings: {ours}\nREADME:   {theirs}"))
            .collect();
        panic!(
            "README.md's configuration table differs from src/settings/variables.rs ({} rows vs {}):\n{}",
            readme.lines().count(),
            expected.lines().count(),
            differ.join("\n")
        );
    }
    let help = text(&rookery(&["--help"]).stdout);
    for row in readme.lines().skip(2) {
        let name = row.split('`').nth(1).expect("a variable name in backticks");
        assert!(help.contains(&format!("\n  {name}  [default: ")), "rookery --help does not list {name}:\n{help}");
    }
    assert!(help.contains("\n  ROOKERY_MAX_FRAME_BYTES  [default: 65536]\n"), "{help}");
}
