//! Image references: parsing never panics, and what parses prints back to
//! text that parses to the same reference (and its stored name too).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wrun_image::ImageRef;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(r) = text.parse::<ImageRef>() else {
        return;
    };
    let printed = r.to_string();
    assert_eq!(printed, text, "a reference prints as it was typed");
    let again: ImageRef = printed.parse().expect("a printed reference parses");
    assert_eq!(again, r, "parse → print → parse changed the reference");
    let name = r.name();
    let stored: ImageRef = name.parse().expect("a stored name parses");
    assert_eq!(stored.repository, r.repository);
    assert_eq!(
        stored,
        r.tagged(),
        "the stored name is the tagged reference"
    );
    let _ = r.registry();
});
