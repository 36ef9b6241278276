//! One message, as `bounces read` gets it, read by the bounce parser. It
//! never panics, and what it says holds together: a bounce names at least
//! one failure; a status is `D.D.D` of class 2, 4 or 5; a failure with a
//! 4.x.x status is never hard; diagnostics and subjects stay on one line,
//! within their length. (A panic inside mail-parser, which `read` catches
//! and reports as not understood, is no failure here.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use newsletter::bounces::parse::{Kind, read};

fuzz_target!(|data: &[u8]| {
    // libFuzzer's panic hook aborts on any panic, even one caught: `read`
    // catches mail-parser's own panics (on some malformed MIME) and calls
    // the message not understood, as `bounces read` does. A panic it does
    // not catch still aborts (libfuzzer-sys aborts on an unwinding input).
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let _ = std::panic::take_hook();
    });
    let report = read(data);
    if report.kind == Kind::Bounce {
        assert!(!report.failures.is_empty(), "a bounce with no failure");
    }
    for failure in &report.failures {
        if let Some(status) = &failure.status {
            let parts: Vec<&str> = status.split('.').collect();
            assert_eq!(parts.len(), 3, "{status}");
            assert!(matches!(parts[0], "2" | "4" | "5"), "{status}");
            assert!(
                parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
                "{status}"
            );
            assert!(
                !(failure.hard && status.starts_with('4')),
                "a 4.x.x failure called hard"
            );
        }
        assert!(
            !failure.diagnostic.contains('\n'),
            "{:?}",
            failure.diagnostic
        );
        assert!(failure.diagnostic.chars().count() <= 300);
    }
    assert!(!report.subject.contains('\n'));
    assert!(report.subject.chars().count() <= 200);
});
