//! A hostile WASI preview 1 guest: tries to escape or damage its filesystem
//! grants and prints one line per attempt, `NAME: ok` or `NAME: err ...`.
//!
//! fs-attack symlink-escape RW_DIR       symlinks out of the view, then uses them
//! fs-attack ro-write RO_FILE            write/truncate/rename/link/delete in a ro mount
//! fs-attack cross-mount RO_FILE RW_DIR  rename/link between a ro and a rw mount
//! fs-attack list-fds                    every fd the guest can reach
//! fs-attack env                         every environment variable it sees
//! fs-attack stdin                       what it can read from stdin

use std::fs::{self, OpenOptions};
use std::io::Write;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn fd_fdstat_get(fd: u32, stat: *mut u8) -> u16;
    fn fd_prestat_get(fd: u32, prestat: *mut u32) -> u16;
    fn fd_prestat_dir_name(fd: u32, path: *mut u8, len: usize) -> u16;
    fn path_symlink(old: *const u8, old_len: usize, fd: u32, new: *const u8, new_len: usize) -> u16;
}

fn report(name: &str, result: std::io::Result<()>) {
    match result {
        Ok(()) => println!("{name}: ok"),
        Err(e) => println!("{name}: err {e}"),
    }
}

/// All preopened directories: (fd, guest path).
fn preopens() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for fd in 3..1024u32 {
        let mut prestat = [0u32; 2];
        // SAFETY: prestat is 8 bytes, the size of a WASI prestat.
        if unsafe { fd_prestat_get(fd, prestat.as_mut_ptr()) } != 0 {
            continue;
        }
        let mut name = vec![0u8; prestat[1] as usize];
        // SAFETY: name has the length the prestat announced.
        if unsafe { fd_prestat_dir_name(fd, name.as_mut_ptr(), name.len()) } == 0 {
            out.push((fd, String::from_utf8_lossy(&name).into_owned()));
        }
    }
    out
}

/// path_symlink relative to the preopen holding `dir` (a guest path).
fn raw_symlink(target: &str, dir: &str, name: &str) -> std::io::Result<()> {
    let (fd, prefix) = preopens()
        .into_iter()
        .filter(|(_, p)| dir.starts_with(p.as_str()))
        .max_by_key(|(_, p)| p.len())
        .ok_or_else(|| std::io::Error::other("no preopen"))?;
    let rel = format!("{}/{name}", dir[prefix.len()..].trim_start_matches('/'));
    let rel = rel.trim_start_matches('/');
    // SAFETY: pointers and lengths come from live Rust strings.
    let errno = unsafe { path_symlink(target.as_ptr(), target.len(), fd, rel.as_ptr(), rel.len()) };
    match errno {
        0 => Ok(()),
        e => Err(std::io::Error::other(format!("errno {e}"))),
    }
}

fn symlink_escape(dir: &str) {
    let attempts = [
        ("abs", "/etc"),
        ("abs-file", "/victim/secret.txt"),
        ("up", "../victim"),
        ("up2", "../../"),
        ("trail", "../victim/"),
        ("upfile", "../victim/secret.txt"),
    ];
    for (name, target) in attempts {
        report(&format!("symlink {name}"), raw_symlink(target, dir, name));
        let through = format!("{dir}/{name}/pwned");
        report(&format!("write-through {name}"), fs::write(&through, b"pwned"));
        let file = format!("{dir}/{name}");
        report(
            &format!("truncate-through {name}"),
            OpenOptions::new().write(true).truncate(true).open(&file).map(drop),
        );
        report(
            &format!("read-through {name}"),
            fs::read(format!("{dir}/{name}/secret.txt")).map(drop),
        );
    }
}

fn ro_write(file: &str) {
    let dir = file.rsplit_once('/').map_or("/", |(d, _)| d);
    report("write", OpenOptions::new().write(true).open(file).and_then(|mut f| f.write_all(b"pwned")));
    report("append", OpenOptions::new().append(true).open(file).and_then(|mut f| f.write_all(b"pwned")));
    report("truncate", OpenOptions::new().write(true).truncate(true).open(file).map(drop));
    report("set-len", fs::File::open(file).and_then(|f| f.set_len(0)));
    report("create", fs::write(format!("{dir}/new.txt"), b"pwned"));
    report("rename", fs::rename(file, format!("{dir}/renamed.txt")));
    report("hard-link", fs::hard_link(file, format!("{dir}/link.txt")));
    report("remove", fs::remove_file(file));
    report("mkdir", fs::create_dir(format!("{dir}/newdir")));
    report("symlink", raw_symlink("x", dir, "sym"));
}

fn cross_mount(ro_file: &str, rw_dir: &str) {
    let ro_dir = ro_file.rsplit_once('/').map_or("/", |(d, _)| d);
    let rw_file = format!("{rw_dir}/own.txt");
    let _ = fs::write(&rw_file, b"own");
    report("rename-ro-to-rw", fs::rename(ro_file, format!("{rw_dir}/stolen.txt")));
    report("rename-rw-to-ro", fs::rename(&rw_file, format!("{ro_dir}/planted.txt")));
    report("link-ro-to-rw", fs::hard_link(ro_file, format!("{rw_dir}/linked.txt")));
    report("link-rw-to-ro", fs::hard_link(&rw_file, format!("{ro_dir}/planted-link.txt")));
    // If a link from ro into rw was made, writing through it would change
    // the read-only file.
    report(
        "write-through-link",
        OpenOptions::new()
            .write(true)
            .open(format!("{rw_dir}/linked.txt"))
            .and_then(|mut f| f.write_all(b"pwned")),
    );
}

fn list_fds() {
    for fd in 0..1024u32 {
        let mut stat = [0u8; 24];
        // SAFETY: stat is 24 bytes, the size of a WASI fdstat.
        if unsafe { fd_fdstat_get(fd, stat.as_mut_ptr()) } != 0 {
            continue;
        }
        match preopens().into_iter().find(|(p, _)| *p == fd) {
            Some((_, name)) => println!("fd {fd} preopen {name}"),
            None => println!("fd {fd}"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("symlink-escape") => symlink_escape(&args[2]),
        Some("ro-write") => ro_write(&args[2]),
        Some("cross-mount") => cross_mount(&args[2], &args[3]),
        Some("list-fds") => list_fds(),
        Some("env") => std::env::vars().for_each(|(k, v)| println!("{k}={v}")),
        Some("stdin") => {
            let mut text = String::new();
            let read = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text);
            println!("stdin {:?}: {text:?}", read.map_err(|e| e.kind()));
        }
        _ => {
            eprintln!("usage: fs-attack symlink-escape|ro-write|cross-mount|list-fds ...");
            std::process::exit(2);
        }
    }
}
