//! Replays the fuzz corpus (`fuzz/corpus/<target>/*`) through the same entry points the
//! cargo-fuzz targets call, on stable Rust, so a parser regression on a saved input shows
//! in `cargo test`. Any file a local fuzz run added is replayed too.

use std::path::Path;

type Entry = fn(&[u8]);

const TARGETS: [(&str, Entry); 4] = [
    ("request_parser", redmux::fuzz_entry::request_parser),
    ("inline_split", redmux::fuzz_entry::inline_split),
    ("config_text", redmux::fuzz_entry::config_text),
    ("reply", redmux::fuzz_entry::reply),
];

#[test]
fn corpus_replays_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut committed = 0;
    for (target, entry) in TARGETS {
        let dir = root.join(target);
        let files = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("fuzz corpus {} missing: {e}", dir.display()));
        let mut seen = 0;
        for file in files {
            let path = file.expect("dir entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| entry(&data));
            assert!(outcome.is_ok(), "{target} panics on {}", path.display());
            seen += 1;
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                committed += 1;
            }
        }
        assert!(seen > 0, "no corpus for {target}");
    }
    assert!(committed >= 20, "committed seeds missing ({committed})");
}

#[test]
fn committed_corpus_stays_small() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut total = 0u64;
    for (target, _) in TARGETS {
        for file in std::fs::read_dir(root.join(target)).expect("corpus dir") {
            let file = file.expect("entry");
            if file.file_name().to_string_lossy().starts_with("seed-") {
                total += file.metadata().expect("metadata").len();
            }
        }
    }
    assert!(
        total < 200 * 1024,
        "committed corpus is {total} bytes (limit 200 KB)"
    );
}
