//! The `kaal` command-line tool: run the scheduler from two YAML files, inspect and steer it.
//! See `kaal --help`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
