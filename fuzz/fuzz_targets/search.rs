#![no_main]
//! See docs/fuzzing.md; the check is shared with tests/fuzz_corpus.rs.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| charon::fuzzing::check("search", data));
