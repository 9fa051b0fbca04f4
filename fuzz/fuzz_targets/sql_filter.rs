#![no_main]
mod samples;

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound::fuzz::sql_filter(data, samples::samples()));
