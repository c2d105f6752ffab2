//! Any bytes given to the GGUF loader give a model or an error: no panic, no out-of-bounds read,
//! no allocation beyond a small multiple of the input size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = qkern::model::load_gguf_bytes(data) {
        // Whatever loads is consistent with its own config.
        w.validate().expect("a loaded model validates");
    }
});
