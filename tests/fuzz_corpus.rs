//! The fuzz targets' seed corpus (fuzz/corpus/<target>/*) as ordinary
//! tests: the same checks `cargo fuzz run` makes, on every seed.

#[path = "../fuzz/fuzz_targets/common.rs"]
mod common;

use std::path::Path;

fn each_seed(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        check(&data);
        seen += 1;
    }
    assert!(
        seen >= 5,
        "{target}: only {seen} seeds in {}",
        dir.display()
    );
}

#[test]
fn head_parser_seeds() {
    each_seed("head_parser", common::check_heads);
}

#[test]
fn chunked_decoder_seeds() {
    each_seed("chunked_decoder", common::check_chunked);
}

#[test]
fn response_splits_seeds() {
    each_seed("response_splits", common::check_splits);
}

#[path = "../fuzz/fuzz_targets/client_inputs_common.rs"]
mod client_inputs_common;

#[test]
fn client_inputs_seeds() {
    each_seed("client_inputs", client_inputs_common::check_client_inputs);
}
