//! `redact_terms` at its edges: a name inside an e-mail already redacted, an
//! empty name or phone that must match nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use charon::core::erasure::redact_terms;

#[test]
fn a_name_inside_a_redacted_email_is_not_redacted_twice() {
    let emails = vec!["q.erasmus@example.test".to_string()];
    let names = vec!["Erasmus".to_string()];
    assert_eq!(
        redact_terms(
            "write to q.erasmus@example.test, Erasmus",
            &emails,
            &[],
            &names
        )
        .unwrap(),
        "write to [REDACTED:email], [REDACTED:name]"
    );
}

#[test]
fn empty_names_and_phones_match_nothing() {
    let names = vec![String::new()];
    let phones = vec![String::new()];
    assert_eq!(
        redact_terms("call +1 999-555-0987 or anyone", &[], &phones, &names),
        None
    );
    // A real term next to the empty ones still works.
    let names = vec![String::new(), "anyone".to_string()];
    assert_eq!(
        redact_terms("call +1 999-555-0987 or anyone", &[], &phones, &names).unwrap(),
        "call +1 999-555-0987 or [REDACTED:name]"
    );
}
