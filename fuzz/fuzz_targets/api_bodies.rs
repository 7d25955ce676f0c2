//! The daemon's parsers of request bodies and filters on their own, without
//! a daemon: `POST /containers/create`'s body (Config, HostConfig,
//! NetworkingConfig, read and adapted), and the `filters` of `/events`,
//! `/containers/prune` and `/images/prune`. The first byte picks the parser.
//! Checks: a refusal is a 400 (dockerd's 500s for two `until` prune
//! filters and for one that is no time aside) with a non-empty message of one line, unless the input carries a
//! newline for it to echo.

#![no_main]

use hyper::StatusCode;
use libfuzzer_sys::fuzz_target;
use wrun_daemon::fuzzing::{Parser, parse};

fuzz_target!(|input: &[u8]| {
    let Some((&pick, rest)) = input.split_first() else {
        return;
    };
    let parser = Parser::ALL[usize::from(pick) % Parser::ALL.len()];
    if let Err((status, message)) = parse(parser, rest) {
        // dockerd answers both with a 500 too.
        let dockerd_500 = status == StatusCode::INTERNAL_SERVER_ERROR
            && (message == "more than one until filter specified"
                || message.starts_with("failed to parse value as time or duration: "));
        assert!(
            status == StatusCode::BAD_REQUEST || dockerd_500,
            "{parser:?}: {status} {message:?}"
        );
        assert!(!message.is_empty(), "{parser:?}: an empty message");
        // dockerd echoes a key or value as given, newline and all: a
        // message may hold one only when the input does.
        let lower = rest.to_ascii_lowercase();
        let carries_newline = [&b"\n"[..], b"\\n", b"\\u000a"]
            .iter()
            .any(|needle| lower.windows(needle.len()).any(|w| w == *needle));
        assert!(
            carries_newline || !message.contains('\n'),
            "{parser:?}: a message of several lines: {message:?}"
        );
    }
});
