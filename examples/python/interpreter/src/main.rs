//! `python` for WASI: RustPython's command line (`-c CODE`, `-m MODULE`,
//! `FILE.py ARGS`, `-` for stdin) with the standard library frozen in.
use rustpython::{InterpreterBuilder, InterpreterBuilderExt};

fn main() -> std::process::ExitCode {
    rustpython::run(InterpreterBuilder::new().init_stdlib())
}
