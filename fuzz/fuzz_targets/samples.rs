// Shared by the targets: real CloudTrail records (the Stratus Red Team sample of
// tests/data/cloudtrail, see its SOURCES.md and LICENSES) and the built-in pack.
use std::io::Read;
use std::sync::OnceLock;

use trailhound::fuzz::Samples;

pub fn samples() -> &'static Samples {
    static S: OnceLock<Samples> = OnceLock::new();
    S.get_or_init(|| {
        let gz = include_bytes!("../../tests/data/cloudtrail/stratus-red-team.ndjson.gz");
        let mut ndjson = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut ndjson)
            .expect("the embedded sample inflates");
        Samples::new(&ndjson, 64)
    })
}
