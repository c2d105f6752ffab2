//! Any bytes given to the pre-packed file loader give a model or an error: no panic, no
//! out-of-bounds read, no allocation beyond a small multiple of the input size. Each input is
//! tried twice: as it is (mostly stopped by the checksum of the header and tensor table), and with
//! that checksum made right, so that the fuzzer reaches the checks of the table and the shapes. A
//! model that loads runs a prefill and a decode step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qkern::model::{prepacked_checksum, Model, SessionOptions};
use qkern::Tier;

fn run(data: &[u8]) {
    let Ok(m) = Model::from_prepacked_bytes(data, Tier::Scalar, 1) else {
        return;
    };
    let vocab = m.config().vocab as u32;
    let opts = SessionOptions {
        capacity: Some(4),
        ..SessionOptions::default()
    };
    if let Ok(mut s) = m.session(opts) {
        let _ = s.prefill(&[0, vocab - 1]);
        let _ = s.decode(vocab / 2);
    }
}

fuzz_target!(|data: &[u8]| {
    run(data);
    if data.len() >= 64 {
        let len = u64::from_le_bytes(data[16..24].try_into().unwrap());
        if let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(64))
            .filter(|&e| e <= data.len())
        {
            let mut v = data.to_vec();
            let sum = prepacked_checksum(&[&v[..32], &v[64..end]]);
            v[32..40].copy_from_slice(&sum.to_le_bytes());
            run(&v);
        }
    }
});
