//! The loaded weights, in the formats the forward pass reads: every 2-D linear weight, the token
//! embedding and the output head as a [`QuantTensor`] (one of the block formats the kernels run,
//! chosen per tensor, so a layer may mix formats), norms and biases in f32.

use super::config::{Arch, Config};
use crate::quant::{
    quantize_q4_0, quantize_q8_0, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1,
    BlockQ6K, BlockQ8_0, QK, QK_K,
};
use crate::{Error, Result, WeightFormat};
use bytemuck::Zeroable;
use std::fmt;
use std::str::FromStr;

/// The block formats a model tensor can be kept in, one variant per [`QuantTensor`] variant.
///
/// Adding a format the kernels run (a [`WeightFormat`]) is one line in each of: this enum and
/// [`QuantType::ALL`], `with_format!`, [`QuantTensor`] and `match_quant!`, the `tensor_format!`
/// list below, `PackedTensor` / `match_packed!` / `PackedTensor::pack` in `packed.rs`, and the
/// loader's `native` table (`convert.rs`; plus its `DType` and the GGUF type code if new there).
///
/// Only some types have a quantizer here ([`QuantType::can_quantize`]: Q4_0, Q8_0), the choices
/// for float weights; the others are read from files as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuantType {
    /// [`BlockQ4_0`]: 4-bit values, one f16 scale per 32.
    #[default]
    Q4_0,
    /// [`BlockQ8_0`]: 8-bit values, one f16 scale per 32.
    Q8_0,
    /// [`BlockQ4_1`]: 4-bit values, f16 scale and minimum per 32.
    Q4_1,
    /// [`BlockQ5_0`]: 5-bit values, one f16 scale per 32.
    Q5_0,
    /// [`BlockQ5_1`]: 5-bit values, f16 scale and minimum per 32.
    Q5_1,
    /// [`BlockQ4K`]: 4-bit values in super-blocks of 256 (6-bit scales and minimums per 32).
    Q4K,
    /// [`BlockQ5K`]: 5-bit values in super-blocks of 256 (6-bit scales and minimums per 32).
    Q5K,
    /// [`BlockQ6K`]: 6-bit values in super-blocks of 256 (int8 scales per 16).
    Q6K,
}

impl QuantType {
    /// Every type, in declaration order.
    pub const ALL: &'static [QuantType] = &[
        QuantType::Q4_0,
        QuantType::Q8_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
        QuantType::Q4K,
        QuantType::Q5K,
        QuantType::Q6K,
    ];

    /// The types [`QuantType::quantize`] can produce (the choices for float weights).
    pub const QUANTIZABLE: &'static [QuantType] = &[QuantType::Q4_0, QuantType::Q8_0];

    /// Whether [`QuantType::quantize`] supports this type.
    pub fn can_quantize(self) -> bool {
        Self::QUANTIZABLE.contains(&self)
    }

    /// Values per block (32, or 256 for the K-quants).
    pub fn block_values(self) -> usize {
        with_format!(self, F => F::BLOCK_VALUES)
    }

    /// The activation format the kernels read for weights of this type.
    pub fn act_format(self) -> crate::quant::ActFormat {
        with_format!(self, F => F::ACT)
    }

    /// Lower-case name as GGUF spells the type (`"q4_0"`).
    pub fn name(self) -> &'static str {
        with_format!(self, F => F::NAME)
    }

    /// Quantizes f32 values (a whole number of blocks) to this type with its reference rule
    /// (ggml's); an [`Error::UnsupportedType`] for a type that has no quantizer here
    /// ([`QuantType::can_quantize`]).
    pub fn quantize(self, x: &[f32]) -> Result<QuantTensor> {
        with_format!(self, F => {
            let mut out = vec![F::zeroed(); x.len() / F::BLOCK_VALUES];
            F::quantize(x, &mut out)?;
            Ok(F::into_tensor(out))
        })
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for QuantType {
    type Err = Error;
    /// Parses a name as [`QuantType::name`] gives it (case-insensitive).
    fn from_str(s: &str) -> Result<QuantType> {
        QuantType::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownQuantType(s.to_string()))
    }
}

/// A 2-D weight (`n` rows of `k` values, row-major, each row a whole number of blocks) in one of
/// the block formats the kernels run.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantTensor {
    /// Q4_0 blocks.
    Q4_0(Vec<BlockQ4_0>),
    /// Q8_0 blocks.
    Q8_0(Vec<BlockQ8_0>),
    /// Q4_1 blocks.
    Q4_1(Vec<BlockQ4_1>),
    /// Q5_0 blocks.
    Q5_0(Vec<BlockQ5_0>),
    /// Q5_1 blocks.
    Q5_1(Vec<BlockQ5_1>),
    /// Q4_K super-blocks.
    Q4K(Vec<BlockQ4K>),
    /// Q5_K super-blocks.
    Q5K(Vec<BlockQ5K>),
    /// Q6_K super-blocks.
    Q6K(Vec<BlockQ6K>),
}

/// `match_quant!(t, b => expr)`: `expr` with `b` bound to the blocks of whatever format the
/// [`QuantTensor`] (or a reference to one) `t` holds; `expr` is compiled once per format.
macro_rules! match_quant {
    ($t:expr, $b:ident => $e:expr) => {
        match $t {
            $crate::model::QuantTensor::Q4_0($b) => $e,
            $crate::model::QuantTensor::Q8_0($b) => $e,
            $crate::model::QuantTensor::Q4_1($b) => $e,
            $crate::model::QuantTensor::Q5_0($b) => $e,
            $crate::model::QuantTensor::Q5_1($b) => $e,
            $crate::model::QuantTensor::Q4K($b) => $e,
            $crate::model::QuantTensor::Q5K($b) => $e,
            $crate::model::QuantTensor::Q6K($b) => $e,
        }
    };
}

/// `with_format!(ty, F => expr)`: `expr` with the type `F` naming the block type of the
/// [`QuantType`] `ty`; `expr` is compiled once per format.
macro_rules! with_format {
    ($t:expr, $f:ident => $e:expr) => {
        match $t {
            $crate::model::QuantType::Q4_0 => {
                type $f = $crate::quant::BlockQ4_0;
                $e
            }
            $crate::model::QuantType::Q8_0 => {
                type $f = $crate::quant::BlockQ8_0;
                $e
            }
            $crate::model::QuantType::Q4_1 => {
                type $f = $crate::quant::BlockQ4_1;
                $e
            }
            $crate::model::QuantType::Q5_0 => {
                type $f = $crate::quant::BlockQ5_0;
                $e
            }
            $crate::model::QuantType::Q5_1 => {
                type $f = $crate::quant::BlockQ5_1;
                $e
            }
            $crate::model::QuantType::Q4K => {
                type $f = $crate::quant::BlockQ4K;
                $e
            }
            $crate::model::QuantType::Q5K => {
                type $f = $crate::quant::BlockQ5K;
                $e
            }
            $crate::model::QuantType::Q6K => {
                type $f = $crate::quant::BlockQ6K;
                $e
            }
        }
    };
}
pub(crate) use with_format;

/// A block format a [`QuantTensor`] can hold, for code generic over the format.
pub trait TensorFormat: WeightFormat {
    /// The format's [`QuantType`].
    const TYPE: QuantType;
    /// Values per block.
    const BLOCK_VALUES: usize;
    /// Wraps blocks of this format.
    fn into_tensor(blocks: Vec<Self>) -> QuantTensor;
    /// The blocks of `t` if it is of this format.
    fn blocks(t: &QuantTensor) -> Option<&[Self]>;
    /// Quantizes `x` (`BLOCK_VALUES * out.len()` values) with the format's reference rule; an
    /// [`Error::UnsupportedType`] for a format without a quantizer here.
    fn quantize(x: &[f32], out: &mut [Self]) -> Result<()>;
}

macro_rules! tensor_format {
    ($($variant:ident: $block:ty, $values:expr, $quantize:path;)*) => {$(
        impl TensorFormat for $block {
            const TYPE: QuantType = QuantType::$variant;
            const BLOCK_VALUES: usize = $values;
            fn into_tensor(blocks: Vec<Self>) -> QuantTensor {
                QuantTensor::$variant(blocks)
            }
            fn blocks(t: &QuantTensor) -> Option<&[Self]> {
                match t {
                    QuantTensor::$variant(b) => Some(b),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
            fn quantize(x: &[f32], out: &mut [Self]) -> Result<()> {
                $quantize(x, out)
            }
        }
        impl From<Vec<$block>> for QuantTensor {
            fn from(blocks: Vec<$block>) -> QuantTensor {
                QuantTensor::$variant(blocks)
            }
        }
    )*};
}

/// The quantizer of the formats that are only read from files, never made here.
fn no_quantizer<F: TensorFormat>(_x: &[f32], _out: &mut [F]) -> Result<()> {
    Err(Error::UnsupportedType {
        tensor: "(f32 values to quantize)".into(),
        ty: format!(
            "{} has no quantizer here (only {})",
            F::NAME,
            QuantType::QUANTIZABLE
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

tensor_format! {
    Q4_0: BlockQ4_0, QK, quantize_q4_0;
    Q8_0: BlockQ8_0, QK, quantize_q8_0;
    Q4_1: BlockQ4_1, QK, no_quantizer;
    Q5_0: BlockQ5_0, QK, no_quantizer;
    Q5_1: BlockQ5_1, QK, no_quantizer;
    Q4K: BlockQ4K, QK_K, no_quantizer;
    Q5K: BlockQ5K, QK_K, no_quantizer;
    Q6K: BlockQ6K, QK_K, no_quantizer;
}

fn values_per_block<F: TensorFormat>(_: &[F]) -> usize {
    F::BLOCK_VALUES
}

impl QuantTensor {
    /// The format.
    pub fn quant_type(&self) -> QuantType {
        fn ty<F: TensorFormat>(_: &[F]) -> QuantType {
            F::TYPE
        }
        match_quant!(self, b => ty(b))
    }

    /// Lower-case name of the format (`"q4_0"`).
    pub fn type_name(&self) -> &'static str {
        self.quant_type().name()
    }

    /// Number of blocks.
    pub fn blocks_len(&self) -> usize {
        match_quant!(self, b => b.len())
    }

    /// Number of values (blocks times values per block).
    pub fn values(&self) -> usize {
        match_quant!(self, b => b.len() * values_per_block(b))
    }

    /// Bytes of the blocks.
    pub fn bytes(&self) -> &[u8] {
        match_quant!(self, b => bytemuck::cast_slice(b))
    }

    /// The blocks if they are of format `F` (`t.blocks::<BlockQ8_0>()`).
    pub fn blocks<F: TensorFormat>(&self) -> Option<&[F]> {
        F::blocks(self)
    }

    /// Removes the last block (returns whether there was one): for tests of shape validation.
    pub fn pop(&mut self) -> bool {
        match_quant!(self, b => b.pop().is_some())
    }

    /// All values as f32 (`values()` of them), with the format's reference dequantization.
    pub fn dequantize(&self) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.values()];
        match_quant!(self, b => WeightFormat::dequantize(b, &mut out))?;
        Ok(out)
    }

    /// Row `row` of a tensor with rows of `k` values, dequantized into `out` (`k` values).
    pub fn dequantize_row(&self, k: usize, row: usize, out: &mut [f32]) -> Result<()> {
        match_quant!(self, b => {
            let per_row = k / values_per_block(b);
            let rows = b.len().checked_div(per_row).unwrap_or(0);
            if per_row == 0 || !k.is_multiple_of(values_per_block(b)) || row >= rows || out.len() != k {
                return Err(Error::ShapeMismatch(format!(
                    "row {row} of {} blocks with rows of {k} values into {} values",
                    b.len(),
                    out.len()
                )));
            }
            WeightFormat::dequantize(&b[row * per_row..(row + 1) * per_row], out)
        })
    }
}

/// The weights of one transformer block. A linear weight with `n` output features and `k` input
/// features is `n` rows of `k` values, row-major, in any [`QuantType`] (parts may differ).
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// RMS norm before attention (`hidden`).
    pub attn_norm: Vec<f32>,
    /// Query projection (`n_head * head_dim` rows, `hidden` columns).
    pub wq: QuantTensor,
    /// Key projection (`n_kv_head * head_dim` rows, `hidden` columns).
    pub wk: QuantTensor,
    /// Value projection (`n_kv_head * head_dim` rows, `hidden` columns).
    pub wv: QuantTensor,
    /// Attention output projection (`hidden` rows, `n_head * head_dim` columns).
    pub wo: QuantTensor,
    /// Query bias (`n_head * head_dim`; Qwen2).
    pub bq: Option<Vec<f32>>,
    /// Key bias (`n_kv_head * head_dim`; Qwen2).
    pub bk: Option<Vec<f32>>,
    /// Value bias (`n_kv_head * head_dim`; Qwen2).
    pub bv: Option<Vec<f32>>,
    /// Per-head RMS norm of the queries (`head_dim`; Qwen3).
    pub q_norm: Option<Vec<f32>>,
    /// Per-head RMS norm of the keys (`head_dim`; Qwen3).
    pub k_norm: Option<Vec<f32>>,
    /// RMS norm before the feed-forward block (`hidden`).
    pub ffn_norm: Vec<f32>,
    /// Gate projection (`ffn` rows, `hidden` columns).
    pub w_gate: QuantTensor,
    /// Up projection (`ffn` rows, `hidden` columns).
    pub w_up: QuantTensor,
    /// Down projection (`hidden` rows, `ffn` columns).
    pub w_down: QuantTensor,
}

impl LayerWeights {
    /// The seven linear weights with their field names: wq, wk, wv, wo, w_gate, w_up, w_down.
    pub fn linear(&self) -> [(&'static str, &QuantTensor); 7] {
        [
            ("wq", &self.wq),
            ("wk", &self.wk),
            ("wv", &self.wv),
            ("wo", &self.wo),
            ("w_gate", &self.w_gate),
            ("w_up", &self.w_up),
            ("w_down", &self.w_down),
        ]
    }
}

/// Counts of each type in `types`, in [`QuantType`] order, types that do not occur left out.
pub(crate) fn count_types(types: impl Iterator<Item = QuantType>) -> Vec<(QuantType, usize)> {
    let mut counts: Vec<(QuantType, usize)> = QuantType::ALL.iter().map(|&t| (t, 0)).collect();
    for t in types {
        if let Some(c) = counts.iter_mut().find(|c| c.0 == t) {
            c.1 += 1;
        }
    }
    counts.retain(|c| c.1 > 0);
    counts
}

/// A whole model: configuration plus converted weights.
#[derive(Clone, Debug)]
pub struct ModelWeights {
    /// Shapes and constants.
    pub config: Config,
    /// Token embedding: `vocab` rows of `hidden` values.
    pub token_embd: QuantTensor,
    /// Output head (`vocab` rows of `hidden` values); `None` when tied (use `token_embd`).
    pub output: Option<QuantTensor>,
    /// Final RMS norm (`hidden`).
    pub output_norm: Vec<f32>,
    /// The transformer blocks, `n_layers` of them.
    pub layers: Vec<LayerWeights>,
}

fn check(what: &str, actual: usize, expected: usize) -> Result<()> {
    if actual != expected {
        return Err(Error::Format(format!(
            "{what}: expected {expected} values, got {actual}"
        )));
    }
    Ok(())
}

fn check_opt(what: &str, v: &Option<Vec<f32>>, expected: usize) -> Result<()> {
    match v {
        Some(v) => check(what, v.len(), expected),
        None => Ok(()),
    }
}

/// Checks which optional tensors layer `i` has: the q/k/v biases all or none, the q/k norms
/// exactly for Qwen3.
pub(crate) fn check_optional_parts(
    c: &Config,
    i: usize,
    biases: [bool; 3],
    norms: (bool, bool),
) -> Result<()> {
    let name = |t: &str| format!("layer {i} {t}");
    if biases.iter().any(|&b| b) && !biases.iter().all(|&b| b) {
        return Err(Error::Format(name(
            "has some but not all of the q/k/v biases",
        )));
    }
    match (c.arch, norms) {
        (Arch::Qwen3, (true, true)) | (Arch::Qwen2, (false, false)) => Ok(()),
        (Arch::Qwen3, _) => Err(Error::Format(name(
            "lacks q_norm/k_norm, required by qwen3",
        ))),
        (Arch::Qwen2, _) => Err(Error::Format(name(
            "has q_norm/k_norm, which qwen2 has not",
        ))),
    }
}

impl ModelWeights {
    /// Checks the configuration ([`Config::validate`]) and that every length matches it: the
    /// number of layers, every tensor's size, the output head present exactly when the embeddings
    /// are untied, q/k norms present exactly for Qwen3, and the q/k/v biases all present or all
    /// absent.
    pub fn validate(&self) -> Result<()> {
        let c = &self.config;
        c.validate()?;
        let (h, q, kv, f) = (c.hidden, c.q_dim()?, c.kv_dim()?, c.ffn);
        // Config::validate proved that these products do not overflow.
        check("token_embd", self.token_embd.values(), c.vocab * h)?;
        match (&self.output, c.tied_embeddings) {
            (Some(o), false) => check("output", o.values(), c.vocab * h)?,
            (None, true) => {}
            (Some(_), true) => {
                return Err(Error::Format(
                    "output head present but the config says tied embeddings".into(),
                ))
            }
            (None, false) => {
                return Err(Error::Format(
                    "output head missing but the config says untied embeddings".into(),
                ))
            }
        }
        check("output_norm", self.output_norm.len(), h)?;
        check("number of layers", self.layers.len(), c.n_layers)?;
        for (i, l) in self.layers.iter().enumerate() {
            let name = |t: &str| format!("layer {i} {t}");
            check(&name("attn_norm"), l.attn_norm.len(), h)?;
            check(&name("wq"), l.wq.values(), q * h)?;
            check(&name("wk"), l.wk.values(), kv * h)?;
            check(&name("wv"), l.wv.values(), kv * h)?;
            check(&name("wo"), l.wo.values(), h * q)?;
            check_optional_parts(
                c,
                i,
                [l.bq.is_some(), l.bk.is_some(), l.bv.is_some()],
                (l.q_norm.is_some(), l.k_norm.is_some()),
            )?;
            check_opt(&name("bq"), &l.bq, q)?;
            check_opt(&name("bk"), &l.bk, kv)?;
            check_opt(&name("bv"), &l.bv, kv)?;
            check_opt(&name("q_norm"), &l.q_norm, c.head_dim)?;
            check_opt(&name("k_norm"), &l.k_norm, c.head_dim)?;
            check(&name("ffn_norm"), l.ffn_norm.len(), h)?;
            check(&name("w_gate"), l.w_gate.values(), f * h)?;
            check(&name("w_up"), l.w_up.values(), f * h)?;
            check(&name("w_down"), l.w_down.values(), h * f)?;
        }
        Ok(())
    }

    /// The output head: `output` when untied, else the token embedding.
    pub fn output_head(&self) -> &QuantTensor {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }

    /// How many linear weights of the layers (seven per layer) are in each type, by type.
    pub fn linear_types(&self) -> Vec<(QuantType, usize)> {
        count_types(
            self.layers
                .iter()
                .flat_map(|l| l.linear().map(|(_, t)| t.quant_type())),
        )
    }
}
