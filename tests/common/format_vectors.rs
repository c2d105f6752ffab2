//! `tests/data/format_vectors.bin`: blocks made by llama.cpp's own quantizer (llama-quantize) and
//! their dequantization by the `gguf` package's numpy dequantizers (layout and provenance in
//! `scripts/gen_format_vectors.py`).

// GGML type ids, as in the vector file.
pub const Q4_1: u32 = 3;
pub const Q5_0: u32 = 6;
pub const Q5_1: u32 = 7;
pub const Q8_0: u32 = 8;
pub const Q4_K: u32 = 12;
pub const Q5_K: u32 = 13;
pub const Q6_K: u32 = 14;

/// (values per block, bytes per block) of a GGML type id.
pub fn block_shape(ty: u32) -> (usize, usize) {
    match ty {
        Q4_1 => (32, 20),
        Q5_0 => (32, 22),
        Q5_1 => (32, 24),
        Q8_0 => (32, 34),
        Q4_K => (256, 144),
        Q5_K => (256, 176),
        Q6_K => (256, 210),
        _ => panic!("unexpected type {ty}"),
    }
}

pub struct Entry {
    pub ty: u32,
    pub rows: usize,
    pub cols: usize,
    pub name: String,
    pub raw: Vec<u8>,
    /// gguf-py's dequantization.
    pub y: Vec<f32>,
}

pub fn vectors() -> Vec<Entry> {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/format_vectors.bin"
    ))
    .unwrap();
    assert_eq!(&data[..4], b"QKFV");
    let u32_at = |p: usize| u32::from_le_bytes(data[p..p + 4].try_into().unwrap());
    assert_eq!(u32_at(4), 1, "version");
    let n = u32_at(8);
    let mut out = Vec::new();
    let mut pos = 12;
    for _ in 0..n {
        let ty = u32_at(pos);
        let rows = u32_at(pos + 4) as usize;
        let cols = u32_at(pos + 8) as usize;
        let name_len = u32_at(pos + 12) as usize;
        pos += 16;
        let name = String::from_utf8(data[pos..pos + name_len].to_vec()).unwrap();
        pos += name_len;
        let (bl, bb) = block_shape(ty);
        assert_eq!(cols % bl, 0, "{name}");
        let nbytes = rows * cols / bl * bb;
        let raw = data[pos..pos + nbytes].to_vec();
        pos += nbytes;
        let y = data[pos..pos + rows * cols * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        pos += rows * cols * 4;
        out.push(Entry {
            ty,
            rows,
            cols,
            name,
            raw,
            y,
        });
    }
    assert_eq!(pos, data.len(), "trailing bytes");
    out
}

pub fn blocks<B: bytemuck::Pod>(raw: &[u8]) -> Vec<B> {
    raw.chunks_exact(size_of::<B>())
        .map(bytemuck::pod_read_unaligned)
        .collect()
}
