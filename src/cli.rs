//! The `rookery` command line: `rookery` (or `rookery serve`) runs a node, `rookery chat` is the
//! terminal client, `rookery healthcheck` the container probe. Every setting stays an
//! environment variable (the container convention); `--help` lists them with their defaults from
//! the same table the node reads them with.

use clap::{Parser, Subcommand};

use crate::{chat::ChatArgs, settings};

/// A real-time chat/room server that scales out horizontally behind Redis.
///
/// Without a command it runs a node, configured by the environment variables below.
#[derive(Debug, Parser)]
#[command(name = "rookery", version, propagate_version = true, after_help = settings::help_text())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (the default), configured by the environment variables below
    #[command(after_help = settings::help_text())]
    Serve,
    /// Join rooms on a node from the terminal: lines typed are sent, messages are printed
    ///
    /// Each line read is sent to the current room (the last one joined); `/join ROOM`,
    /// `/leave ROOM`, `/history` and `/quit` are commands. It reconnects and resumes by itself,
    /// and at the end of piped input waits for its messages to be acknowledged.
    Chat(ChatArgs),
    /// Probe the node at ROOKERY_BIND: exit 0 when its /healthz answers 200, else 1
    ///
    /// It reads ROOKERY_BIND like the node does and asks on loopback when the node binds every
    /// address: a container health probe without curl or a shell.
    Healthcheck,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, error::ErrorKind};

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rookery").chain(args.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_serves_and_each_command_parses() {
        assert!(parse(&[]).unwrap().command.is_none());
        assert!(matches!(parse(&["serve"]).unwrap().command, Some(Command::Serve)));
        assert!(matches!(parse(&["healthcheck"]).unwrap().command, Some(Command::Healthcheck)));
        assert!(matches!(parse(&["chat", "ws://h/ws"]).unwrap().command, Some(Command::Chat(_))));
    }

    #[test]
    fn help_and_version_are_answers_and_anything_else_unknown_is_an_error() {
        for args in [&["--help"][..], &["serve", "--help"], &["chat", "--help"], &["healthcheck", "-h"]] {
            assert_eq!(parse(args).unwrap_err().kind(), ErrorKind::DisplayHelp, "{args:?}");
        }
        for args in [&["--version"][..], &["chat", "--version"], &["healthcheck", "-V"]] {
            assert_eq!(parse(args).unwrap_err().kind(), ErrorKind::DisplayVersion, "{args:?}");
        }
        for args in [&["serv"][..], &["--bind", "0.0.0.0:1"], &["healthcheck", "extra"], &["chat"]] {
            let error = parse(args).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}: {error}");
        }
    }

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let help = Cli::command().render_long_help().to_string();
        for variable in settings::VARIABLES {
            assert!(help.contains(&format!("  {}  [default: ", variable.name)), "{} missing:\n{help}", variable.name);
        }
        assert!(help.contains("ROOKERY_BIND  [default: 0.0.0.0:8080]"), "{help}");
    }
}
