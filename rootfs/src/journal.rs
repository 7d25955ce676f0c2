//! The record of deletions beside the upper tree: whiteouts kept as paths in
//! an append-only, fsynced file (`whiteouts`), not as magic names in the
//! tree, so a guest may create any name, `.wh.x` included.
//!
//! A record is `W`, the path's length (u32, little endian) and the path
//! (`a/b`, names joined by `/`). A whiteout of `p` hides `p` and everything
//! below it in the lower; a later record of an ancestor makes the ones below
//! it redundant, so they are dropped. A directory of the upper that has a
//! whiteout at its own path is opaque: nothing of the lower shows through it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};

use crate::error::{Error, Result};
use crate::path::ViewPath;

const WHITEOUT: u8 = b'W';

/// The whiteouts in memory; `contains` is what lookups ask.
#[derive(Default, Debug)]
pub(crate) struct Whiteouts {
    paths: HashSet<ViewPath>,
}

impl Whiteouts {
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn contains(&self, path: &ViewPath) -> bool {
        !self.paths.is_empty() && self.paths.contains(path)
    }

    fn insert(&mut self, path: ViewPath) {
        self.paths.retain(|p| !p.starts_with(&path));
        self.paths.insert(path);
    }

    pub fn iter(&self) -> impl Iterator<Item = &ViewPath> {
        self.paths.iter()
    }

    /// Records `path` durably in `journal`, then in memory.
    pub fn record(&mut self, journal: &File, path: ViewPath) -> Result<()> {
        if self.paths.contains(&path) {
            return Ok(());
        }
        let bytes = path.to_relative_bytes();
        let len = u32::try_from(bytes.len()).map_err(|_| Error::NameTooLong)?;
        let mut rec = Vec::with_capacity(bytes.len() + 5);
        rec.push(WHITEOUT);
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&bytes);
        let mut w = journal;
        w.write_all(&rec)?;
        journal.sync_data()?;
        self.insert(path);
        Ok(())
    }

    /// Reads a journal back. A record cut short by a crash at the end is
    /// dropped and cut off the file, so the next append starts clean; any
    /// other damage is an error (the upper would be wrong).
    pub fn load(journal: &File) -> Result<Whiteouts> {
        let mut data = Vec::new();
        let mut r = journal;
        r.read_to_end(&mut data)?;
        let mut out = Whiteouts::default();
        let mut at = 0;
        while at < data.len() {
            let Some(header) = data.get(at..at + 5) else {
                break;
            };
            if header[0] != WHITEOUT {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "whiteout journal: unknown record {:#x} at byte {at}",
                        header[0]
                    ),
                )));
            }
            let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let Some(bytes) = data.get(at + 5..at + 5 + len) else {
                break;
            };
            out.insert(ViewPath::from_relative_bytes(bytes)?);
            at += 5 + len;
        }
        if at < data.len() {
            journal.set_len(at as u64)?;
            journal.sync_data()?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vp(s: &str) -> ViewPath {
        ViewPath::parse(s).expect("plain path")
    }

    #[test]
    fn records_survive_a_reload_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("whiteouts");
        let file = File::options()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .expect("journal");
        let mut w = Whiteouts::default();
        w.record(&file, vp("a/b")).expect("record");
        w.record(&file, vp("c\nd/.wh.x")).expect("record");
        w.record(&file, vp("a")).expect("record");
        assert!(
            !w.contains(&vp("a/b")),
            "an ancestor's whiteout replaces it"
        );
        // A crash in the middle of the next record.
        (&file).write_all(&[WHITEOUT, 9, 0]).expect("torn write");
        drop(file);
        let file = File::options()
            .append(true)
            .read(true)
            .open(&path)
            .expect("journal");
        let mut back = Whiteouts::load(&file).expect("load");
        assert!(back.contains(&vp("a")));
        assert!(back.contains(&vp("c\nd/.wh.x")));
        assert!(!back.contains(&vp("a/b")));
        back.record(&file, vp("e")).expect("append after the cut");
        let again = Whiteouts::load(&File::open(&path).expect("reopen")).expect("load");
        assert!(again.contains(&vp("e")) && again.contains(&vp("a")));
    }
}
