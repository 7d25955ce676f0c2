//! `fsh`, a file shell for tests and demos: runs filesystem commands given
//! as arguments, one after the other, separated by a `;` argument. Built
//! twice from this source: `fsh.wasm` (WASI preview 1, a core module) and
//! `fsh-component.wasm` (WASI 0.2, a component), so both of wrun's
//! filesystem hosts run the same scripts.
//!
//!   fsh write /etc/motd hello ';' cat /etc/motd ';' ls /etc
//!
//! Each command prints what it read; a command that fails prints
//! `CMD: error ERRNO` (the errno name, e.g. `ENOENT`) and the script goes
//! on. The exit code is 1 if any command failed, else 0 (`exit N` ends it
//! with N at once).
//!
//! Commands: write PATH TEXT, append PATH TEXT, cat PATH, fill PATH BYTES
//! (BYTES zero bytes, written in 64 KiB pieces), ls DIR (names sorted, `/`
//! after a directory, `@` after a symlink), tree DIR (every path below,
//! sorted), stat PATH (`file SIZE`, `dir`, `symlink`; a symlink itself),
//! mkdir DIR, mkdir-p DIR, rm PATH, rmdir DIR, rm-r PATH, mv FROM TO,
//! cp FROM TO, ln TARGET PATH (hard link), ln-s TARGET PATH, readlink PATH,
//! truncate PATH SIZE, sleep MS, echo TEXT, exit N.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut failed = false;
    for command in args.split(|a| a == ";") {
        let Some((name, rest)) = command.split_first() else {
            continue;
        };
        if name == "exit" {
            let code = rest.first().and_then(|c| c.parse::<u8>().ok()).unwrap_or(0);
            return ExitCode::from(code);
        }
        if let Err(e) = run(name, rest) {
            println!("{name}: error {}", errno_name(&e));
            failed = true;
        }
        let _ = std::io::stdout().flush();
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn run(name: &str, args: &[String]) -> std::io::Result<()> {
    let arg = |i: usize| -> std::io::Result<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    match name {
        "write" => std::fs::write(arg(0)?, arg(1)?),
        "append" => {
            let mut f = std::fs::OpenOptions::new().append(true).create(true).open(arg(0)?)?;
            f.write_all(arg(1)?.as_bytes())
        }
        "cat" => {
            let data = std::fs::read(arg(0)?)?;
            println!("{}", String::from_utf8_lossy(&data));
            Ok(())
        }
        "fill" => {
            let mut left: u64 = arg(1)?.parse().map_err(|_| invalid())?;
            let mut f = std::fs::File::create(arg(0)?)?;
            let chunk = vec![0u8; 64 * 1024];
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            f.sync_all()
        }
        "ls" => {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(arg(0)?)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                let mut n = entry.file_name().to_string_lossy().into_owned();
                if kind.is_dir() {
                    n.push('/');
                } else if kind.is_symlink() {
                    n.push('@');
                }
                names.push(n);
            }
            names.sort();
            for n in names {
                println!("{n}");
            }
            Ok(())
        }
        "tree" => {
            let mut out = Vec::new();
            walk(Path::new(arg(0)?), &mut out)?;
            out.sort();
            for p in out {
                println!("{p}");
            }
            Ok(())
        }
        "stat" => {
            let m = std::fs::symlink_metadata(arg(0)?)?;
            if m.file_type().is_symlink() {
                println!("symlink");
            } else if m.is_dir() {
                println!("dir");
            } else {
                println!("file {}", m.len());
            }
            Ok(())
        }
        "mkdir" => std::fs::create_dir(arg(0)?),
        "mkdir-p" => std::fs::create_dir_all(arg(0)?),
        "rm" => std::fs::remove_file(arg(0)?),
        "rmdir" => std::fs::remove_dir(arg(0)?),
        "rm-r" => std::fs::remove_dir_all(arg(0)?),
        "mv" => std::fs::rename(arg(0)?, arg(1)?),
        "cp" => std::fs::copy(arg(0)?, arg(1)?).map(|_| ()),
        "ln" => std::fs::hard_link(arg(0)?, arg(1)?),
        "ln-s" => symlink(arg(0)?, arg(1)?),
        "readlink" => {
            println!("{}", std::fs::read_link(arg(0)?)?.display());
            Ok(())
        }
        "truncate" => {
            let size: u64 = arg(1)?.parse().map_err(|_| invalid())?;
            std::fs::OpenOptions::new().write(true).open(arg(0)?)?.set_len(size)
        }
        "sleep" => {
            let ms: u64 = arg(0)?.parse().map_err(|_| invalid())?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(())
        }
        "echo" => {
            println!("{}", args.join(" "));
            Ok(())
        }
        _ => Err(invalid()),
    }
}

fn walk(dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        out.push(path.display().to_string());
        if kind.is_dir() {
            walk(&path, out)?;
        }
    }
    Ok(())
}

/// wasi-libc's `symlink` (std's WASI symlink function is not stable).
#[cfg(target_os = "wasi")]
fn symlink(target: &str, path: &str) -> std::io::Result<()> {
    use std::ffi::{CString, c_char, c_int};
    unsafe extern "C" {
        fn symlink(target: *const c_char, path: *const c_char) -> c_int;
    }
    let target = CString::new(target).map_err(|_| invalid())?;
    let path = CString::new(path).map_err(|_| invalid())?;
    // SAFETY: both are NUL-terminated strings that outlive the call.
    if unsafe { symlink(target.as_ptr(), path.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "wasi"))]
fn symlink(target: &str, path: &str) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

fn invalid() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::InvalidInput)
}

/// The errno name of an error, as the guest's libc gave it.
fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => wasi_errno_name(code),
        None => format!("{:?}", e.kind()),
    }
}

/// wasi-libc's errno values are WASI's, not Linux's: map the ones a
/// filesystem gives to their names (`EIO` and the rest by number).
fn wasi_errno_name(code: i32) -> String {
    let name = match code {
        2 => "EACCES",
        8 => "EBADF",
        20 => "EEXIST",
        28 => "EINVAL",
        29 => "EIO",
        31 => "EISDIR",
        32 => "ELOOP",
        37 => "ENAMETOOLONG",
        44 => "ENOENT",
        51 => "ENOSPC",
        54 => "ENOTDIR",
        55 => "ENOTEMPTY",
        58 => "ENOTSUP",
        63 => "EPERM",
        69 => "EROFS",
        75 => "EXDEV",
        76 => "ENOTCAPABLE",
        _ => return format!("errno{code}"),
    };
    name.to_owned()
}
