#![no_main]
mod samples;

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound::fuzz::metric_filter(data, samples::samples()));
