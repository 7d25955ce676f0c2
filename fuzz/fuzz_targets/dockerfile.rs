//! Dockerfiles: any text gives a build plan or a build-file error, never a
//! panic. Lines after a `---` line are `--build-arg NAME=VALUE` values.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let (file, args) = text.split_once("\n---\n").unwrap_or((text, ""));
    let args: BTreeMap<String, String> = args
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Err(e) = wrun_bundler::dockerfile::parse(file, "Dockerfile", &args) {
        let _ = e.to_string();
    }
});
