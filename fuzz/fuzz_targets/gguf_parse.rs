//! Any bytes given to the GGUF loader give a model or an error: no panic, no out-of-bounds read,
//! no allocation beyond a small multiple of the input size. The same for the tokenizer built from
//! the file's metadata, whose encoding and decoding of a fixed text must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = qkern::model::load_gguf_bytes(data) {
        // Whatever loads is consistent with its own config.
        w.validate().expect("a loaded model validates");
    }
    if let Ok(t) = qkern::model::Tokenizer::from_gguf_bytes(data) {
        let ids = t.encode("Hello, <|im_start|>wörld 123\n");
        let _ = t.decode(&ids);
    }
});
