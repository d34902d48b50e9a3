use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A bug must not print a backtrace at an operator: one line, and a non-zero exit.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("latchkey: internal error: {info}");
    }));
    let cli = latchkey::cli::Cli::parse();
    match latchkey::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("latchkey: {error}");
            ExitCode::FAILURE
        }
    }
}
