//! `tasker graphql schema`: prints the GraphQL schema as SDL (what
//! docs/graphql/schema.graphql holds; a server test fails when they differ).

use std::process::ExitCode;

/// `tasker graphql ...`.
#[derive(Debug, clap::Subcommand)]
pub enum GraphqlCommand {
    /// Print the schema (SDL) to stdout.
    Schema,
}

/// Runs the subcommand.
pub fn run(cmd: GraphqlCommand) -> ExitCode {
    match cmd {
        GraphqlCommand::Schema => {
            print!("{}", tasker_server::graphql::sdl());
            ExitCode::SUCCESS
        }
    }
}
