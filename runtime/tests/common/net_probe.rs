//! Reading the output of the net-probe guest (one line per attempt), shared
//! by the runtime's tests and the end-to-end tests (`tests/common`).

/// The line of `text` that starts with `start`.
pub fn line<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line {start:?} in:\n{text}"))
}

/// Fails the test unless the attempt on the line starting with `start` was
/// refused by the address policy.
pub fn assert_denied(text: &str, start: &str) {
    let l = line(text, start);
    assert!(l.contains("err PermissionDenied"), "not denied: {l}");
}
