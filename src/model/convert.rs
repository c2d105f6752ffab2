//! Conversion of a raw tensor from a file (any supported element type) to the formats of
//! [`ModelWeights`](super::ModelWeights). The rules for a 2-D weight ([`RawTensor::to_quant`]):
//!
//! * a quantized type (every one the loaders read: Q4_0, Q8_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
//!   Q6_K; [`native`]) is kept as it is, bytes unchanged: the kernels run them all;
//! * F32 / F16 / BF16 is quantized to the caller's choice: [`LoadOptions::quant`] for the layers'
//!   linear weights, Q8_0 for the token embedding and output head;
//! * anything else is an error naming the tensor and its type (the parsers reject those types).
//!
//! Norms and biases become f32. Conversion goes one row at a time, so no f32 copy of a whole
//! tensor is ever made.

use super::weights::{with_format, TensorFormat};
use super::{Config, LayerWeights, LoadOptions, ModelWeights, QuantTensor, QuantType};
use crate::quant::QK;
use crate::{Error, Result, WeightFormat};
use half::{bf16, f16};
use std::collections::HashMap;

/// Element types the loaders read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    F16,
    BF16,
    /// A block format, read as it is.
    Quant(QuantType),
}

impl DType {
    /// (values per block, bytes per block).
    pub(crate) fn block(self) -> (usize, usize) {
        match self {
            DType::F32 => (1, 4),
            DType::F16 | DType::BF16 => (1, 2),
            DType::Quant(t) => with_format!(t, F => (F::BLOCK_VALUES, std::mem::size_of::<F>())),
        }
    }
}

/// The [`QuantType`] of a quantized file type: such a tensor is kept as it is (the kernels run
/// every type the loaders read).
fn native(dtype: DType) -> Option<QuantType> {
    match dtype {
        DType::Quant(t) => Some(t),
        DType::F32 | DType::F16 | DType::BF16 => None,
    }
}

/// A tensor as found in a file: its name, type, shape (outermost dimension first, so a linear
/// weight is `[n, k]` with rows of `k`) and bytes. The parser guarantees that `data` holds
/// exactly the bytes of that shape and type and that the row length is a whole number of blocks.
#[derive(Clone, Debug)]
pub(crate) struct RawTensor<'a> {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: &'a [u8],
}

/// The blocks of a matrix in one [`QuantType`]: the file's own bytes (a native type, not copied)
/// or a tensor quantized at load.
pub(crate) enum Blocks<'a> {
    /// Bytes of a file (or of a tensor), in the type's block layout, not necessarily aligned for
    /// it.
    Borrowed(QuantType, &'a [u8]),
    /// Quantized from a float type.
    Owned(QuantTensor),
    /// Quantized from a float type into an anonymous mapping of its own (`len` bytes of blocks),
    /// which goes back to the system whole when dropped (see `packed.rs`, `pack_parts`).
    Anon(QuantType, memmap2::MmapMut, usize),
}

impl Blocks<'_> {
    /// The block type.
    pub(crate) fn quant_type(&self) -> QuantType {
        match self {
            Blocks::Borrowed(t, _) => *t,
            Blocks::Owned(q) => q.quant_type(),
            Blocks::Anon(t, _, _) => *t,
        }
    }

    /// The bytes of the blocks.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Blocks::Borrowed(_, b) => b,
            Blocks::Owned(q) => q.bytes(),
            Blocks::Anon(_, m, len) => &m[..*len],
        }
    }
}

/// Drops leading dimensions of 1 (GGUF may store a vector as `[n, 1, 1]`, i.e. outermost 1s here).
fn squeeze(s: &[usize]) -> &[usize] {
    let first = s
        .iter()
        .position(|&d| d != 1)
        .unwrap_or(s.len().saturating_sub(1));
    &s[first..]
}

/// Bytes of `n` values of `dtype`, or `None` if `n` is not a whole number of blocks or overflows.
pub(crate) fn byte_size(dtype: DType, n: usize) -> Option<usize> {
    let (bv, bb) = dtype.block();
    if !n.is_multiple_of(bv) {
        return None;
    }
    (n / bv).checked_mul(bb)
}

impl<'a> RawTensor<'a> {
    /// Checks the shape against `expected` (leading 1s ignored on both sides).
    pub(crate) fn expect_shape(&self, expected: &[usize]) -> Result<()> {
        if squeeze(&self.shape) != squeeze(expected) {
            return Err(Error::Format(format!(
                "tensor {:?} has shape {:?}, expected {:?}",
                self.name, self.shape, expected
            )));
        }
        Ok(())
    }

    /// Decodes the values `start..start + out.len()` (a whole number of blocks) into f32, quantized
    /// types with the crate's reference dequantizers.
    pub(crate) fn decode(&self, start: usize, out: &mut [f32]) -> Result<()> {
        let (bv, bb) = self.dtype.block();
        let src = &self.data[start / bv * bb..(start + out.len()) / bv * bb];
        match self.dtype {
            DType::F32 => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            DType::F16 => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            DType::BF16 => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            DType::Quant(t) => with_format!(t, F => {
                // Copied, as file bytes need not be aligned for the block type.
                let blocks: Vec<F> = bytemuck::pod_collect_to_vec(src);
                WeightFormat::dequantize(&blocks, out)?
            }),
        }
        Ok(())
    }

    /// All values as f32, after checking the shape (norms, biases).
    pub(crate) fn to_f32(&self, expected: &[usize]) -> Result<Vec<f32>> {
        self.expect_shape(expected)?;
        let n = self.shape.iter().product::<usize>();
        let mut out = vec![0f32; n];
        self.decode(0, &mut out)?;
        Ok(out)
    }

    /// Checks that the tensor is `[n, k]` with `k` a multiple of 32 and of its type's block length
    /// (256 for the K-quants).
    pub(crate) fn matrix(&self, n: usize, k: usize) -> Result<()> {
        self.expect_shape(&[n, k])?;
        let block = self.dtype.block().0.max(QK);
        if !k.is_multiple_of(block) {
            return Err(Error::Format(format!(
                "tensor {:?}: row length {k} is not a multiple of {block}",
                self.name
            )));
        }
        Ok(())
    }

    /// Converts an `[n, k]` matrix by the rules of the module docs: kept as it is if its type is
    /// [`native`], else (a float type) quantized to `float_to` with the target's reference rule
    /// (an error if `float_to` has no quantizer, [`QuantType::can_quantize`]).
    pub(crate) fn to_quant(&self, n: usize, k: usize, float_to: QuantType) -> Result<QuantTensor> {
        Ok(match self.to_blocks(n, k, float_to)? {
            Blocks::Borrowed(t, data) => with_format!(t, F => {
                F::into_tensor(bytemuck::pod_collect_to_vec::<u8, F>(data))
            }),
            Blocks::Owned(q) => q,
            Blocks::Anon(t, m, len) => with_format!(t, F => {
                F::into_tensor(bytemuck::pod_collect_to_vec::<u8, F>(&m[..len]))
            }),
        })
    }

    /// [`RawTensor::to_blocks`], a float tensor quantized into an anonymous mapping
    /// ([`Blocks::Anon`]) rather than the heap.
    pub(crate) fn to_blocks_anon(
        &self,
        n: usize,
        k: usize,
        float_to: QuantType,
    ) -> Result<Blocks<'a>> {
        self.convert_blocks(n, k, float_to, true)
    }

    /// [`RawTensor::to_quant`] without copying a native tensor: its file bytes are returned as
    /// they are ([`Blocks::Borrowed`]); a float tensor is quantized into a new tensor (one tensor's
    /// worth of memory, made one row at a time).
    pub(crate) fn to_blocks(&self, n: usize, k: usize, float_to: QuantType) -> Result<Blocks<'a>> {
        self.convert_blocks(n, k, float_to, false)
    }

    fn convert_blocks(
        &self,
        n: usize,
        k: usize,
        float_to: QuantType,
        anon: bool,
    ) -> Result<Blocks<'a>> {
        self.matrix(n, k)?;
        if let Some(t) = native(self.dtype) {
            return Ok(Blocks::Borrowed(t, self.data));
        }
        if !float_to.can_quantize() {
            return Err(Error::UnsupportedType {
                tensor: self.name.clone(),
                ty: format!(
                    "{:?} quantized to {float_to}, which has no quantizer",
                    self.dtype
                ),
            });
        }
        if anon {
            return with_format!(float_to, F => {
                self.check_rows::<F>(k)?;
                let len = n * k / F::BLOCK_VALUES * std::mem::size_of::<F>();
                let mut m = memmap2::MmapMut::map_anon(len.max(1)).map_err(|e| {
                    Error::Io(format!("a temporary of {len} bytes for {:?}: {e}", self.name))
                })?;
                // A mapping starts on a page boundary: aligned for any block type.
                let out = bytemuck::try_cast_slice_mut::<u8, F>(&mut m[..len])
                    .map_err(|e| Error::Io(format!("a misaligned temporary: {e}")))?;
                self.quantize_rows_into(k, out)?;
                Ok(Blocks::Anon(float_to, m, len))
            });
        }
        with_format!(float_to, F => self.quantize_rows::<F>(n, k)).map(Blocks::Owned)
    }

    /// Rows `r0 .. r0 + rows` of an `[n, k]` matrix whose shape was checked
    /// ([`RawTensor::to_blocks`] checks it); an error if they lie outside it.
    pub(crate) fn rows(&self, k: usize, r0: usize, rows: usize) -> Result<RawTensor<'a>> {
        let row_bytes = byte_size(self.dtype, k);
        let range = row_bytes
            .and_then(|rb| Some(r0.checked_mul(rb)?..(r0.checked_add(rows)?).checked_mul(rb)?));
        let data = range.and_then(|r| self.data.get(r)).ok_or_else(|| {
            Error::Format(format!(
                "tensor {:?}: rows {r0}..{} of {k} values lie outside it",
                self.name,
                r0.saturating_add(rows)
            ))
        })?;
        Ok(RawTensor {
            name: self.name.clone(),
            dtype: self.dtype,
            shape: vec![rows, k],
            data,
        })
    }

    /// Decodes the matrix row by row and quantizes each row to `F`.
    fn quantize_rows<F: TensorFormat>(&self, n: usize, k: usize) -> Result<QuantTensor> {
        self.check_rows::<F>(k)?;
        let mut out = vec![F::zeroed(); n * k / F::BLOCK_VALUES];
        self.quantize_rows_into(k, &mut out)?;
        Ok(F::into_tensor(out))
    }

    /// Checks that rows of `k` values are whole blocks of `F`.
    fn check_rows<F: TensorFormat>(&self, k: usize) -> Result<()> {
        if !k.is_multiple_of(F::BLOCK_VALUES) {
            return Err(Error::Format(format!(
                "tensor {:?}: row length {k} is not a multiple of the {} block size {}",
                self.name,
                F::NAME,
                F::BLOCK_VALUES
            )));
        }
        Ok(())
    }

    /// Quantizes the rows of `k` values (as many as `out` holds) into `out`.
    fn quantize_rows_into<F: TensorFormat>(&self, k: usize, out: &mut [F]) -> Result<()> {
        let mut row = vec![0f32; k];
        for (r, o) in out.chunks_exact_mut(k / F::BLOCK_VALUES).enumerate() {
            self.decode(r * k, &mut row)?;
            F::quantize(&row, o)?;
        }
        Ok(())
    }
}

/// The tensors of one transformer block, whatever a file format calls them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    AttnNorm,
    Q,
    K,
    V,
    O,
    QBias,
    KBias,
    VBias,
    QNorm,
    KNorm,
    FfnNorm,
    Gate,
    Up,
    Down,
}

/// A file format's tensor names.
pub(crate) trait Names {
    fn token_embd(&self) -> &'static str;
    fn output(&self) -> &'static str;
    fn output_norm(&self) -> &'static str;
    fn layer(&self, i: usize, part: Part) -> String;
}

/// Removes tensor `name` from `t`, or the error that the file lacks it.
pub(crate) fn take<'a>(
    t: &mut HashMap<String, RawTensor<'a>>,
    name: &str,
) -> Result<RawTensor<'a>> {
    t.remove(name)
        .ok_or_else(|| Error::Format(format!("tensor {name:?} is missing")))
}

/// An optional vector tensor of `n` values, as f32.
pub(crate) fn f32_opt(t: Option<RawTensor<'_>>, n: usize) -> Result<Option<Vec<f32>>> {
    t.map(|t| t.to_f32(&[n])).transpose()
}

/// The error for a tensor the model does not use, if any is left in `tensors`.
pub(crate) fn no_leftovers(tensors: &HashMap<String, RawTensor<'_>>, c: &Config) -> Result<()> {
    match tensors.keys().min() {
        Some(name) => Err(Error::Format(format!(
            "unexpected tensor {name:?} ({} tensors not used by a {} model of {} layers)",
            tensors.len(),
            c.arch.name(),
            c.n_layers
        ))),
        None => Ok(()),
    }
}

/// Builds [`ModelWeights`] from a file's tensors (removed from `tensors` as they are used; 2-D
/// weights converted by [`RawTensor::to_quant`] with `options`), checks every shape against
/// `config`, and fails on any tensor left over (the caller removes tensors it ignores on purpose
/// first).
pub(crate) fn build_weights(
    config: Config,
    tensors: &mut HashMap<String, RawTensor<'_>>,
    names: &dyn Names,
    options: &LoadOptions,
) -> Result<ModelWeights> {
    config.validate()?;
    let c = &config;
    let (h, q, kv, f) = (c.hidden, c.q_dim()?, c.kv_dim()?, c.ffn);
    let token_embd = take(tensors, names.token_embd())?.to_quant(c.vocab, h, QuantType::Q8_0)?;
    let output = if c.tied_embeddings {
        None
    } else {
        Some(take(tensors, names.output())?.to_quant(c.vocab, h, QuantType::Q8_0)?)
    };
    let output_norm = take(tensors, names.output_norm())?.to_f32(&[h])?;
    let lin = options.quant;
    let mut layers = Vec::new();
    for i in 0..c.n_layers {
        let mut t = |p: Part| take(tensors, &names.layer(i, p));
        let attn_norm = t(Part::AttnNorm)?.to_f32(&[h])?;
        let wq = t(Part::Q)?.to_quant(q, h, lin)?;
        let wk = t(Part::K)?.to_quant(kv, h, lin)?;
        let wv = t(Part::V)?.to_quant(kv, h, lin)?;
        let wo = t(Part::O)?.to_quant(h, q, lin)?;
        let ffn_norm = t(Part::FfnNorm)?.to_f32(&[h])?;
        let w_gate = t(Part::Gate)?.to_quant(f, h, lin)?;
        let w_up = t(Part::Up)?.to_quant(f, h, lin)?;
        let w_down = t(Part::Down)?.to_quant(h, f, lin)?;
        let mut opt = |p: Part| tensors.remove(&names.layer(i, p));
        layers.push(LayerWeights {
            attn_norm,
            wq,
            wk,
            wv,
            wo,
            bq: f32_opt(opt(Part::QBias), q)?,
            bk: f32_opt(opt(Part::KBias), kv)?,
            bv: f32_opt(opt(Part::VBias), kv)?,
            q_norm: f32_opt(opt(Part::QNorm), c.head_dim)?,
            k_norm: f32_opt(opt(Part::KNorm), c.head_dim)?,
            ffn_norm,
            w_gate,
            w_up,
            w_down,
        });
    }
    no_leftovers(tensors, c)?;
    let w = ModelWeights {
        config,
        token_embd,
        output,
        output_norm,
        layers,
    };
    w.validate()?;
    Ok(w)
}
