//! Replays every input of the committed fuzz corpus (`fuzz/corpus/<target>/`: the seeds and
//! what the fuzzers found and kept) through its target: none may panic. Each target must have
//! a corpus, so that a missing folder cannot make this pass by testing nothing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

#[test]
fn every_corpus_input_is_read_without_a_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut failures = Vec::new();
    for (name, target) in ferrograd_fuzz_targets::TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target needs a corpus)", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            count += 1;
            if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
                failures.push(path.display().to_string());
            }
        }
        assert!(count > 0, "{}: an empty corpus", dir.display());
        println!("{name}: {count} inputs");
    }
    assert!(failures.is_empty(), "panicked on {failures:?}");
}
