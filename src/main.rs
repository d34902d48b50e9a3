use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Whatever umask the operator's shell has, everything Latchkey creates (the database and
    // SQLite's -wal, -shm and journal files, backups, directories) is owner-only: the database
    // holds the signing keys. Set once, before any file is touched.
    // SAFETY: umask only replaces the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
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
