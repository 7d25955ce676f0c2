//! The API's parsers of user-typed values that need no daemon: memory
//! sizes, durations, bind specs, names, `filters` JSON and `--filter` flags,
//! Go globs, RFC 3339 times. The first byte picks the parser. None may
//! panic, and what has a printed form prints back to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wrun_api::parse::{BindSpec, Filters, check_name, glob_match, parse_duration, parse_memory};
use wrun_api::time;

fuzz_target!(|input: &[u8]| {
    let Some((&which, rest)) = input.split_first() else {
        return;
    };
    if which % 9 == 8 {
        let mut secs = [0u8; 8];
        let n = rest.len().min(8);
        secs[..n].copy_from_slice(&rest[..n]);
        let text = time::human_duration(i64::from_le_bytes(secs));
        assert!(!text.is_empty());
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 9 {
        0 => {
            if let Ok(bytes) = parse_memory(text) {
                assert!(bytes >= 1, "{text:?} parsed to no bytes");
            }
        }
        1 => {
            if let Ok(d) = parse_duration(text) {
                assert!(!d.is_zero(), "{text:?} parsed to no time");
            }
        }
        2 => {
            if let Ok(bind) = BindSpec::parse(text) {
                let printed = bind.to_string();
                assert_eq!(BindSpec::parse(&printed), Ok(bind), "{printed:?}");
            }
        }
        3 => {
            if check_name(text).is_ok() {
                assert!(text.len() >= 2 && text.is_ascii());
            }
        }
        4 => {
            if let Ok(filters) = Filters::from_json(text) {
                round_trip(&filters);
                let _ = filters.validate(&["label", "dangling", "reference"]);
                let _ = filters.bool_value("dangling");
                let _ = filters.match_labels("label", |k| (k == "a").then_some("b"));
            }
        }
        5 => {
            let flags: Vec<String> = text.lines().map(str::to_string).collect();
            if let Ok(filters) = Filters::from_flags(&flags) {
                round_trip(&filters);
            }
        }
        6 => {
            let (pattern, name) = text.split_once('\n').unwrap_or((text, ""));
            if let Ok(true) = glob_match(pattern, name) {
                assert!(
                    !name.contains('/') || pattern.contains('/'),
                    "{pattern:?} matched across '/'"
                );
            }
        }
        _ => {
            if let Some(t) = time::parse(text) {
                let printed = time::format(t);
                assert_eq!(
                    time::parse(&printed),
                    Some(t),
                    "{text:?} printed as {printed:?}"
                );
            }
        }
    }
});

fn round_trip(filters: &Filters) {
    let json = filters.to_json();
    assert_eq!(Filters::from_json(&json).as_ref(), Ok(filters), "{json}");
}
