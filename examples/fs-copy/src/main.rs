//! The filesystem example (WASI preview 1): reads a word list shipped in the
//! image's rootfs and writes a numbered, upper-cased copy into a volume.
//!
//! Usage: fs-copy [SOURCE] [DEST]   (defaults: /share/words.txt /out/words.txt)

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let src = args.next().unwrap_or_else(|| "/share/words.txt".to_string());
    let dest = args.next().unwrap_or_else(|| "/out/words.txt".to_string());
    match copy(&src, &dest) {
        Ok(lines) => {
            println!("copied {lines} lines from {src} to {dest}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fs-copy: {e}");
            ExitCode::from(1)
        }
    }
}

fn copy(src: &str, dest: &str) -> Result<usize, String> {
    let text = std::fs::read_to_string(src).map_err(|e| format!("cannot read {src}: {e}"))?;
    let upper = std::env::var("FS_COPY_UPPERCASE").is_ok_and(|v| v == "1");
    let mut out = std::fs::File::create(dest).map_err(|e| format!("cannot create {dest}: {e}"))?;
    let mut lines = 0;
    for (n, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let line = if upper { line.to_uppercase() } else { line.to_string() };
        writeln!(out, "{}: {line}", n + 1).map_err(|e| format!("cannot write {dest}: {e}"))?;
        lines += 1;
    }
    Ok(lines)
}
