//! The shipped config.example.toml parses, and documents every key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use charon::core::config::Config;

#[test]
fn example_config_parses() {
    let text = std::fs::read_to_string("config.example.toml").unwrap();
    let c = Config::parse(&text, Path::new("config.example.toml")).unwrap();
    assert_eq!(c.environment, "staging");
    assert_eq!(c.theme, "dark");
    assert_eq!(c.mfa, charon::core::config::MfaConfig::default());
}

#[test]
fn example_config_with_every_optional_key_uncommented_parses() {
    let text = std::fs::read_to_string("config.example.toml").unwrap();
    let all: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if rest.contains(" = ") && !rest.contains(". ") => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let c = Config::parse(&all, Path::new("config.example.toml")).unwrap();
    assert!(c.themes_dir.is_some());
    assert!(c.mfa.master_key_file.is_some());
    assert!(c.mfa.validation.is_some());
    assert_ne!(c.pluto_read_url, c.pluto_url);
}
