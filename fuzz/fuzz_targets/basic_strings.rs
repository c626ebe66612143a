#![no_main]

use libfuzzer_sys::fuzz_target;

mod basic_common;

fuzz_target!(|data: &[u8]| basic_common::check_strings(data));
