#![no_main]

use libfuzzer_sys::fuzz_target;

mod client_inputs_common;

fuzz_target!(|data: &[u8]| client_inputs_common::check_client_inputs(data));
