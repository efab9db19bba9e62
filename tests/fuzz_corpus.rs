//! Replays every kept fuzz input (fuzz/corpus/<target>/ and the crash
//! regressions in fuzz/regressions/<target>/) through the same checks as the
//! fuzz targets (`charon::fuzzing`), on the stable toolchain, in `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use charon::fuzzing::TARGETS;

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    let mut n = 0;
    for (target, check) in TARGETS {
        let dir = root.join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{target}: {} fails its check", file.display());
            n += 1;
        }
    }
    n
}

#[test]
fn every_kept_corpus_input_passes_its_check() {
    let n = replay("corpus");
    assert!(
        n >= TARGETS.len(),
        "only {n} corpus inputs: is fuzz/corpus/ there?"
    );
}

#[test]
fn every_crash_found_by_fuzzing_stays_fixed() {
    replay("regressions");
}

#[test]
fn every_target_has_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, _) in TARGETS {
        assert!(
            root.join("corpus")
                .join(target)
                .read_dir()
                .is_ok_and(|mut d| d.next().is_some()),
            "fuzz/corpus/{target} is empty"
        );
        assert!(
            root.join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "no fuzz target {target}"
        );
    }
}

/// The bundled files and the loaders' fixtures are valid inputs too.
#[test]
fn bundled_files_and_fixtures_pass_the_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs: Vec<(&str, std::path::PathBuf)> = vec![
        ("config", root.join("config.example.toml")),
        ("datamap", root.join("datamap/pluto.toml")),
    ];
    for (target, dir) in [
        ("theme", "themes"),
        ("theme", "tests/fixtures/themes"),
        ("datamap", "tests/fixtures/datamap"),
    ] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            inputs.push((target, e.path()));
        }
    }
    for (target, path) in inputs {
        charon::fuzzing::check(target, &std::fs::read(&path).unwrap());
    }
}

/// Hand-written hostile inputs, one per invariant worth naming.
#[test]
fn hostile_inputs_pass_the_checks() {
    let cases: &[(&str, &[u8])] = &[
        ("sanitize", b"\x1b]0;pwned\x07\xc2\x9b2J\xe2\x80\xae\\x1b"),
        (
            "sanitize",
            "card 4111 1111 1111 1111 iban GB82 WEST 1234 5698 7654 32 é".as_bytes(),
        ),
        ("search", b"50%_off\\ sale\x01xx50%_off\\ sale"),
        ("search", b"%\x01anything"),
        ("search", b"a_\x01A_b"),
        ("search", b"\xff\xfe@\x00"),
        ("otp", b"CCCCCCCCCCCC CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"),
        ("otp", b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09"),
        (
            "sk_signature",
            b"\x00\x00\x00\x1asks-ssh-ed25519@openssh.com",
        ),
        (
            "config",
            b"pluto_url = \"postgres://u:p@ss@h/db\"\nconsole_url = \"postgres://u:p@ss@h/c\"\n",
        ),
        ("theme", b"inherits = \"t1\"\n---\ninherits = \"t0\"\n"),
        ("datamap", b"[tables.\"\"]\n"),
    ];
    for (target, data) in cases {
        charon::fuzzing::check(target, data);
    }
}
