#![no_main]
mod samples;

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound::fuzz::correlation(data, samples::samples()));
