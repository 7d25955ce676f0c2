//! Linux signals as dockerd names and parses them (`signal.ParseSignal` and
//! its Linux `SignalMap`), and what each does by default to a process.

/// What a signal does to a process that has no handler for it (signal(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// Ends the process (`Term` and `Core`; every real-time signal).
    End,
    /// Nothing (`CHLD`, `URG`, `WINCH`).
    Ignore,
    /// Stops the process until `CONT` (`STOP`, `TSTP`, `TTIN`, `TTOU`).
    Stop,
    /// Resumes a stopped process; nothing otherwise.
    Continue,
}

/// dockerd's Linux table, without `SIG`: name and number.
const NAMED: [(&str, i64); 34] = [
    ("ABRT", 6),
    ("ALRM", 14),
    ("BUS", 7),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("FPE", 8),
    ("HUP", 1),
    ("ILL", 4),
    ("INT", 2),
    ("IO", 29),
    ("IOT", 6),
    ("KILL", 9),
    ("PIPE", 13),
    ("POLL", 29),
    ("PROF", 27),
    ("PWR", 30),
    ("QUIT", 3),
    ("SEGV", 11),
    ("STKFLT", 16),
    ("STOP", 19),
    ("SYS", 31),
    ("TERM", 15),
    ("TRAP", 5),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("USR1", 10),
    ("USR2", 12),
    ("VTALRM", 26),
    ("WINCH", 28),
    ("XCPU", 24),
    ("XFSZ", 25),
];

/// A JSON Schema pattern of what [`parse`] takes, for the API description:
/// empty (no signal), an upper-case name of the table with or without
/// `SIG`, or a number from 1 (the names in other cases and signed or
/// zero-led numbers are taken too, but not described).
pub const SCHEMA_PATTERN: &str = "^$|^(SIG)?(ABRT|ALRM|BUS|CHLD|CLD|CONT|FPE|HUP|ILL|INT|IO|IOT|KILL|PIPE|POLL|PROF|PWR|QUIT|SEGV|STKFLT|STOP|SYS|TERM|TRAP|TSTP|TTIN|TTOU|URG|USR1|USR2|VTALRM|WINCH|XCPU|XFSZ|RTMIN|RTMAX)$|^[1-9][0-9]{0,8}$";

/// `SIGRTMIN` and `SIGRTMAX` as glibc (and dockerd's table) number them.
const RTMIN: i64 = 34;
const RTMAX: i64 = 64;

/// The number of a signal name of dockerd's table, `SIG` or not, in any
/// case: the names above, `RTMIN`, `RTMIN+1` to `RTMIN+15`, `RTMAX-14` to
/// `RTMAX-1`, `RTMAX`.
fn named(name: &str) -> Option<i64> {
    let upper = name.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMED.iter().find(|(known, _)| *known == name) {
        return Some(n);
    }
    // The offsets are written without sign or zeros in the table: `RTMIN+01`
    // is not in it.
    let offset = |rest: &str, sign: char| -> Option<i64> {
        if rest.is_empty() {
            return Some(0);
        }
        let digits = rest.strip_prefix(sign)?;
        let n = digits.parse::<i64>().ok()?;
        (n.to_string() == digits && (1..=15).contains(&n)).then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return offset(rest, '+').map(|n| RTMIN + n);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return offset(rest, '-').filter(|&n| n <= 14).map(|n| RTMAX - n);
    }
    None
}

/// dockerd's `ParseSignal`: an integer other than 0 (any, as Go's `Atoi`
/// reads it: sign and leading zeros allowed), or a name of its table. The
/// error is its words, `Invalid signal: RAW`.
pub fn parse(raw: &str) -> Result<i64, String> {
    match raw.parse::<i64>() {
        Ok(0) => Err(format!("Invalid signal: {raw}")),
        Ok(n) => Ok(n),
        Err(_) => named(raw).ok_or_else(|| format!("Invalid signal: {raw}")),
    }
}

/// Whether Linux has signal `n` (dockerd's `ValidSignalForPlatform`: a
/// number of its table; 32 and 33 are glibc's own and not in it).
pub fn is_linux(n: i64) -> bool {
    (1..=31).contains(&n) || (RTMIN..=RTMAX).contains(&n)
}

/// What signal `n` (one [`is_linux`] takes) does to a process without a
/// handler.
pub fn default_action(n: i64) -> DefaultAction {
    match n {
        17 | 23 | 28 => DefaultAction::Ignore,
        19..=22 => DefaultAction::Stop,
        18 => DefaultAction::Continue,
        _ => DefaultAction::End,
    }
}

/// dockerd's words for a number Linux does not have (`uint64` as its kill
/// route prints it: `-1` is 18446744073709551615).
pub fn unsupported(n: i64) -> String {
    format!("The linux daemon does not support signal {}", n as u64)
}

#[cfg(test)]
mod tests {
    /// The API description's pattern names exactly the table's signals.
    #[test]
    fn the_schema_pattern_names_the_table() {
        let alternation = SCHEMA_PATTERN
            .split_once("^(SIG)?(")
            .and_then(|(_, rest)| rest.split_once(")$"))
            .map(|(names, _)| names)
            .expect("the pattern has a list of names");
        let mut described: Vec<&str> = alternation.split('|').collect();
        described.retain(|n| !n.starts_with("RT"));
        let table: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
        assert_eq!(described, table);
        for name in described {
            assert!(
                parse(name).is_ok() && parse(&format!("SIG{name}")).is_ok(),
                "{name}"
            );
        }
        assert!(parse("RTMIN").is_ok() && parse("SIGRTMAX").is_ok() && parse("999999999").is_ok());
    }

    use super::*;

    #[test]
    fn names_with_and_without_sig_in_any_case() {
        for (raw, n) in [
            ("KILL", 9),
            ("SIGKILL", 9),
            ("sigterm", 15),
            ("winch", 28),
            ("SIGWINCH", 28),
            ("cld", 17),
            ("IOT", 6),
            ("POLL", 29),
            ("RTMIN", 34),
            ("SIGRTMIN+1", 35),
            ("rtmin+15", 49),
            ("RTMAX-14", 50),
            ("SIGRTMAX-1", 63),
            ("RTMAX", 64),
        ] {
            assert_eq!(parse(raw), Ok(n), "{raw}");
        }
    }

    #[test]
    fn numbers_as_go_atoi_reads_them() {
        assert_eq!(parse("28"), Ok(28));
        assert_eq!(parse("+9"), Ok(9));
        assert_eq!(parse("009"), Ok(9));
        assert_eq!(parse("-1"), Ok(-1));
        assert_eq!(parse("65"), Ok(65));
    }

    #[test]
    fn dockerd_refusals_in_its_words() {
        for raw in [
            "0",
            "",
            "BOGUS",
            "SIG",
            "SIGSIGKILL",
            "UNUSED",
            "RTMIN+0",
            "RTMIN+16",
            "RTMIN+01",
            "RTMIN-1",
            "RTMAX-0",
            "RTMAX-15",
            "RTMAX+1",
            "1.5",
            " 9",
            "99999999999999999999",
        ] {
            assert_eq!(parse(raw), Err(format!("Invalid signal: {raw}")), "{raw:?}");
        }
    }

    #[test]
    fn linux_numbers_and_dockerd_words_for_others() {
        assert!(is_linux(1) && is_linux(31) && is_linux(34) && is_linux(64));
        assert!(!is_linux(32) && !is_linux(33) && !is_linux(65) && !is_linux(-1));
        assert_eq!(
            unsupported(-1),
            "The linux daemon does not support signal 18446744073709551615"
        );
        assert_eq!(
            unsupported(65),
            "The linux daemon does not support signal 65"
        );
    }

    #[test]
    fn default_actions_of_signal_7() {
        for n in [1, 2, 3, 6, 9, 15, 16, 24, 29, 31, 34, 64] {
            assert_eq!(default_action(n), DefaultAction::End, "{n}");
        }
        for n in [17, 23, 28] {
            assert_eq!(default_action(n), DefaultAction::Ignore, "{n}");
        }
        for n in [19, 20, 21, 22] {
            assert_eq!(default_action(n), DefaultAction::Stop, "{n}");
        }
        assert_eq!(default_action(18), DefaultAction::Continue);
    }
}
