//! The `review-sync` binary: parses the command line, sets up logging,
//! runs the command, and turns its error into an exit status (78 for an
//! invalid config, 1 for anything else, with a one-line reason on stderr).

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    // The demo's own output is the point; its logs only show with -v.
    let quieter = i8::from(matches!(args.command, cli::Command::Demo));
    review_sync::telemetry::init(args.log_format.into(), args.verbosity() - quieter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("review-sync: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let format = args.log_format;
    let result = runtime.block_on(cli::dispatch(args));
    // Blocking ledger work may still be finishing a transaction: let it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    match result {
        Ok(code) => code,
        Err(e) => cli::exit::report(&e, format),
    }
}
