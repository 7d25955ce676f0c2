//! What the fuzz targets share: a compact description of an image tar that
//! mutations keep loadable (names and JSON refer to other entries' digests
//! and sizes by placeholders), its encoder for the seed generator, and the
//! checks a store must pass after a `load`; the request form of the
//! `api_router` inputs.

pub mod api_request;

use std::io::Write;
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// How the first byte of an `image_load` input is read.
pub const MODE_RAW: u8 = 0;
pub const MODE_PLAIN: u8 = 1;
pub const MODE_GZIP: u8 = 2;

/// Entry kinds (low nibble of an entry's kind byte).
pub const KIND_FILE: u8 = 0;
pub const KIND_DIR: u8 = 1;
pub const KIND_SYMLINK: u8 = 2;
pub const KIND_HARDLINK: u8 = 3;
/// The tar type bytes of kinds 4 to 15: the rarer entries a loader meets.
const OTHER_KINDS: [u8; 12] = [
    b'p', b'3', b'4', b'S', b'x', b'g', b'L', b'K', b'7', b'V', b'M', b'N',
];

/// Kind flag: the data is itself a list of entries, written as a tar (a layer).
pub const FLAG_TAR: u8 = 0x10;
/// Kind flag: the data is gzip-compressed once built.
pub const FLAG_GZIP: u8 = 0x20;
/// Kind flag: `$D<n>$`, `$H<n>$`, `$S<n>$`, `$U<n>$` in the data are
/// replaced by entry n's digest, hex digest, size, and uncompressed digest.
pub const FLAG_REFS: u8 = 0x40;

/// One entry of an archive description.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    pub kind: u8,
    pub name: Vec<u8>,
    pub data: Vec<u8>,
}

/// Facts of a built entry that later entries may refer to.
#[derive(Clone, Copy)]
struct Built {
    digest: [u8; 32],
    uncompressed: [u8; 32],
    size: usize,
}

/// Reads entries until the input ends: kind, name length (u8), name, data
/// length (u16 LE), data. A cut entry ends the list.
pub fn decode_entries(mut input: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    loop {
        let Some((&kind, rest)) = input.split_first() else {
            break;
        };
        let Some((&name_len, rest)) = rest.split_first() else {
            break;
        };
        let Some((name, rest)) = rest.split_at_checked(name_len as usize) else {
            break;
        };
        let Some((len, rest)) = rest.split_at_checked(2) else {
            break;
        };
        let len = u16::from_le_bytes([len[0], len[1]]) as usize;
        let data_len = len.min(rest.len());
        let (data, rest) = rest.split_at(data_len);
        out.push(Entry {
            kind,
            name: name.to_vec(),
            data: data.to_vec(),
        });
        input = rest;
    }
    out
}

/// The inverse of [`decode_entries`] (for the seed generator).
pub fn encode_entries(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let name_len = u8::try_from(e.name.len()).expect("seed names are under 256 bytes");
        let data_len = u16::try_from(e.data.len()).expect("seed data is under 64 KiB");
        out.push(e.kind);
        out.push(name_len);
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&data_len.to_le_bytes());
        out.extend_from_slice(&e.data);
    }
    out
}

/// The bytes an `image_load` input stands for: the raw archive, or the tar
/// (gzipped for [`MODE_GZIP`]) its entries describe.
pub fn archive_bytes(input: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = input.split_first() else {
        return Vec::new();
    };
    match mode % 3 {
        MODE_PLAIN => build_tar(&decode_entries(rest), true),
        MODE_GZIP => gzip(&build_tar(&decode_entries(rest), true)),
        _ => rest.to_vec(),
    }
}

fn build_tar(entries: &[Entry], top: bool) -> Vec<u8> {
    let mut built: Vec<Built> = Vec::new();
    let mut tar = Vec::new();
    for e in entries {
        let mut data = if top && e.kind & FLAG_REFS != 0 {
            expand(&e.data, &built)
        } else {
            e.data.clone()
        };
        if top && e.kind & FLAG_TAR != 0 {
            data = build_tar(&decode_entries(&data), false);
        }
        let uncompressed: [u8; 32] = Sha256::digest(&data).into();
        if top && e.kind & FLAG_GZIP != 0 {
            data = gzip(&data);
        }
        let own = Built {
            digest: Sha256::digest(&data).into(),
            uncompressed,
            size: data.len(),
        };
        let name = if top {
            let mut all = built.clone();
            all.push(own);
            expand(&e.name, &all)
        } else {
            e.name.clone()
        };
        built.push(own);
        let (kind, link, body): (u8, &[u8], &[u8]) = match e.kind & 0x0f {
            KIND_FILE => (b'0', b"", &data),
            KIND_DIR => (b'5', b"", b""),
            KIND_SYMLINK => (b'2', &data, b""),
            KIND_HARDLINK => (b'1', &data, b""),
            k => (OTHER_KINDS[usize::from(k - 4)], b"", &data),
        };
        append(&mut tar, &name, kind, link, body);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// Replaces `$X<n>$` placeholders naming entries already built.
fn expand(text: &[u8], built: &[Built]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'$'
            && let Some((value, used)) = placeholder(&text[i + 1..], built)
        {
            out.extend_from_slice(value.as_bytes());
            i += 1 + used;
            continue;
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

fn placeholder(text: &[u8], built: &[Built]) -> Option<(String, usize)> {
    let (&what, rest) = text.split_first()?;
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 3 || rest.get(digits) != Some(&b'$') {
        return None;
    }
    let n: usize = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let b = built.get(n)?;
    let value = match what {
        b'D' => format!("sha256:{}", hex::encode(b.digest)),
        b'H' => hex::encode(b.digest),
        b'S' => b.size.to_string(),
        b'U' => format!("sha256:{}", hex::encode(b.uncompressed)),
        _ => return None,
    };
    Some((value, digits + 2))
}

/// Writes one tar entry with GNU long-name records when a name or link
/// does not fit, without the checks `tar::Builder` makes (a hostile
/// archive has `..`, absolute paths and odd types).
fn append(tar: &mut Vec<u8>, name: &[u8], kind: u8, link: &[u8], data: &[u8]) {
    if name.len() > 100 {
        let mut long = name.to_vec();
        long.push(0);
        append_header(tar, b"././@LongLink", b'L', b"", long.len() as u64);
        append_data(tar, &long);
    }
    if link.len() > 100 {
        let mut long = link.to_vec();
        long.push(0);
        append_header(tar, b"././@LongLink", b'K', b"", long.len() as u64);
        append_data(tar, &long);
    }
    append_header(tar, name, kind, link, data.len() as u64);
    append_data(tar, data);
}

fn append_header(tar: &mut Vec<u8>, name: &[u8], kind: u8, link: &[u8], size: u64) {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    tar.extend_from_slice(&h);
}

fn append_data(tar: &mut Vec<u8>, data: &[u8]) {
    tar.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    tar.extend(std::iter::repeat_n(0u8, pad));
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// The names directly inside `dir`, sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.expect("listing a directory of the fuzz store"))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("listing {}: {e}", dir.display()),
    };
    names.sort();
    names
}
