//! Display masks for personal values. Masking happens in the core, so an
//! unmasked value never reaches a screen that did not ask for it.

/// `jane.doe@gmail.com` → `j***@g***.com`.
pub fn email(value: &str) -> String {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return "***".to_string();
    };
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    // The top-level domain is shown only when it looks like one (2 to 6
    // ASCII letters: `com`, `co.uk`'s `uk`, `museum`); anything else after
    // the last dot may be a name or a number someone typed into the field.
    let tld = domain
        .rsplit_once('.')
        .map(|(_, t)| t)
        .filter(|t| (2..=6).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphabetic()))
        .unwrap_or("");
    if tld.is_empty() {
        format!("{}***@{}***", first(local), first(domain))
    } else {
        format!("{}***@{}***.{tld}", first(local), first(domain))
    }
}

/// `+1 415-555-0134` → `•••••••••34` (the last two digits).
pub fn phone(value: &str) -> String {
    let digits: Vec<char> = value.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return "•••".to_string();
    }
    let tail: String = digits[digits.len() - 2..].iter().collect();
    format!("{}{tail}", "•".repeat(digits.len() - 2))
}

/// `Jane Mary Doe` → `J. M. D.`
pub fn name(value: &str) -> String {
    let initials: Vec<String> = value
        .split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_alphabetic()))
        .map(|c| format!("{}.", c.to_uppercase()))
        .collect();
    if initials.is_empty() {
        "•".to_string()
    } else {
        initials.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_their_hint() {
        assert_eq!(email("jane.doe@gmail.com"), "j***@g***.com");
        assert_eq!(email("no-at-sign"), "***");
        assert_eq!(email("x@localhost"), "x***@l***");
        // What follows the last dot is shown only when it looks like a TLD.
        assert_eq!(email("jane@example.museum"), "j***@e***.museum");
        assert_eq!(email("jane@acme.janedoe1980"), "j***@a***");
        assert_eq!(email("jane@acme.4111111111111111"), "j***@a***");
        assert_eq!(email("jane@acme.smithsonian"), "j***@a***");
        assert_eq!(email("jane@acme.c"), "j***@a***");
        assert_eq!(phone("+1 415-555-0134"), "•••••••••34");
        assert_eq!(phone("12"), "•••");
        assert_eq!(name("Jane Mary doe"), "J. M. D.");
        assert_eq!(name("  "), "•");
    }
}
