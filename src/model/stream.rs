//! [`Model::load`]: a model file packed straight from its mapping, weights never held twice.
//!
//! The file is mapped read-only and its tensors checked as [`build_weights`]
//! (`convert.rs`) checks them, without converting anything. Then each weight goes from the mapping
//! into its packed buffer: a quantized tensor is packed where it lies in the file (gathered into
//! one temporary only when parts of a fused matrix, or bytes not aligned for the block type); a
//! float tensor is quantized into a temporary of one tensor first. As soon as a tensor is packed,
//! its pages of the mapping are released ([`Maps::release`]). The output head is packed
//! [`HEAD_CHUNK_ROWS`] rows at a time, so even that largest tensor is never resident whole in the
//! mapping. An untied token embedding is not copied at all: it stays in the mapping and is read a
//! row at a time ([`MappedRows`]).
//!
//! [`build_weights`]: super::convert::build_weights
//! [`MappedRows`]: super::mapped::MappedRows

use super::convert::{f32_opt, no_leftovers, take, Blocks, Names, Part, RawTensor};
use super::mapped::Maps;
use super::packed::{Embedding, Layer, LayerVectors, Linear, HEAD_CHUNK_ROWS};
use super::weights::check_optional_parts;
use super::{Config, LoadOptions, Model, QuantType};
use crate::{Kernels, Result, Tier};
use std::collections::HashMap;
use std::path::Path;

impl Model {
    /// Loads a `.gguf` file or a Hugging Face folder (paths as [`super::load`] takes them) and
    /// packs it for `tier` (an error if the CPU lacks it), running on `threads` threads: the same
    /// model as `Model::new(load_with(path, options)?, tier, threads)`, bit for bit, but packed
    /// straight from the file mapping, so the weights are never held twice. While loading, the
    /// process holds the packed weights plus about one tensor of the file; afterwards, the
    /// packed weights and (for an untied model) the pages of the token embedding that lookups
    /// touched, which are clean file pages the system may drop.
    ///
    /// A pre-packed file (written by [`super::pack_model`], `qkern pack`; recognised by its
    /// magic) is mapped read-only and used in place, zero copy: it must be packed for `tier`
    /// (an error otherwise), and `options` do not apply (its types were chosen when it was
    /// packed).
    pub fn load(path: &Path, options: &LoadOptions, tier: Tier, threads: usize) -> Result<Model> {
        let m = Self::load_untrimmed(path, options, tier, threads);
        super::mapped::trim_heap();
        m
    }

    fn load_untrimmed(
        path: &Path,
        options: &LoadOptions,
        tier: Tier,
        threads: usize,
    ) -> Result<Model> {
        if super::prepacked::is_prepacked(path) {
            return super::prepacked::load(path, tier, threads);
        }
        let kernels = Kernels::for_tier(tier)?;
        match super::folder_of(path) {
            Some(dir) => super::safetensors::with_dir_tensors(dir, |config, tensors, maps| {
                build_model(
                    config,
                    tensors,
                    &super::safetensors::HfNames,
                    options,
                    kernels,
                    threads,
                    maps,
                )
            }),
            None => super::gguf::with_gguf_tensors(path, |config, tensors, maps| {
                build_model(
                    config,
                    tensors,
                    &super::gguf::GgufNames,
                    options,
                    kernels,
                    threads,
                    maps,
                )
            }),
        }
    }
}

/// The seven linear weights of a layer and their shapes (`[n, k]`), in the order
/// [`Layer::pack`] asks for them.
struct RawLayer<'a> {
    vectors: LayerVectors,
    weights: [(RawTensor<'a>, usize, usize); 7],
}

/// Builds a packed [`Model`] from a file's tensors (removed from `tensors` as they are used; the
/// same checks and conversions as [`super::convert::build_weights`], so the same model), releasing
/// each tensor's pages of the mapping in `maps` once it is packed.
pub(crate) fn build_model(
    config: Config,
    tensors: &mut HashMap<String, RawTensor<'_>>,
    names: &dyn Names,
    options: &LoadOptions,
    kernels: &'static Kernels,
    threads: usize,
    maps: &Maps,
) -> Result<Model> {
    config.validate()?;
    let c = &config;
    let (h, q, kv, f) = (c.hidden, c.q_dim()?, c.kv_dim()?, c.ffn);
    // First every check, converting nothing.
    let token_embd = take(tensors, names.token_embd())?;
    token_embd.matrix(c.vocab, h)?;
    let output = if c.tied_embeddings {
        None
    } else {
        let o = take(tensors, names.output())?;
        o.matrix(c.vocab, h)?;
        Some(o)
    };
    let output_norm = take(tensors, names.output_norm())?.to_f32(&[h])?;
    let lin = options.quant;
    let mut raw = Vec::with_capacity(c.n_layers);
    for i in 0..c.n_layers {
        let mut t = |p: Part| take(tensors, &names.layer(i, p));
        fn m(w: RawTensor<'_>, n: usize, k: usize) -> Result<(RawTensor<'_>, usize, usize)> {
            w.matrix(n, k)?;
            Ok((w, n, k))
        }
        let attn_norm = t(Part::AttnNorm)?.to_f32(&[h])?;
        let wq = m(t(Part::Q)?, q, h)?;
        let wk = m(t(Part::K)?, kv, h)?;
        let wv = m(t(Part::V)?, kv, h)?;
        let wo = m(t(Part::O)?, h, q)?;
        let ffn_norm = t(Part::FfnNorm)?.to_f32(&[h])?;
        let w_gate = m(t(Part::Gate)?, f, h)?;
        let w_up = m(t(Part::Up)?, f, h)?;
        let w_down = m(t(Part::Down)?, h, f)?;
        let mut opt = |p: Part| tensors.remove(&names.layer(i, p));
        let vectors = LayerVectors {
            attn_norm,
            bq: f32_opt(opt(Part::QBias), q)?,
            bk: f32_opt(opt(Part::KBias), kv)?,
            bv: f32_opt(opt(Part::VBias), kv)?,
            q_norm: f32_opt(opt(Part::QNorm), c.head_dim)?,
            k_norm: f32_opt(opt(Part::KNorm), c.head_dim)?,
            ffn_norm,
        };
        check_optional_parts(
            c,
            i,
            [
                vectors.bq.is_some(),
                vectors.bk.is_some(),
                vectors.bv.is_some(),
            ],
            (vectors.q_norm.is_some(), vectors.k_norm.is_some()),
        )?;
        raw.push(RawLayer {
            vectors,
            weights: [wq, wk, wv, wo, w_gate, w_up, w_down],
        });
    }
    no_leftovers(tensors, c)?;

    // Then the packing, one tensor at a time.
    let release = |b: &[u8]| maps.release(b);
    // A float tensor is quantized first: its file bytes can go as soon as that is done.
    fn convert<'a>(
        maps: &Maps,
        t: &RawTensor<'a>,
        n: usize,
        k: usize,
        to: QuantType,
    ) -> Result<Blocks<'a>> {
        let b = t.to_blocks_anon(n, k, to)?;
        if !matches!(b, Blocks::Borrowed(..)) {
            maps.release(t.data);
        }
        Ok(b)
    }
    let mut layers = Vec::with_capacity(raw.len());
    for RawLayer { vectors, weights } in raw {
        let mut get = |i: usize| {
            let (t, n, k) = &weights[i];
            convert(maps, t, *n, *k, lin)
        };
        layers.push(Layer::pack(vectors, &mut get, c, kernels, &release)?);
    }
    let head_src = output.as_ref().unwrap_or(&token_embd);
    let mut get = |r0: usize, rows: usize| {
        // Float rows are quantized to Q8_0 row by row, as the whole tensor would be.
        convert(maps, &head_src.rows(h, r0, rows)?, rows, h, QuantType::Q8_0)
    };
    let head = Linear::pack_rows(kernels, c.vocab, h, HEAD_CHUNK_ROWS, &mut get, &release)?;
    let embedding = match output {
        None => Embedding::Head,
        Some(_) => match maps.rows(&token_embd, c.vocab, h) {
            Some(rows) => Embedding::Mapped(rows),
            None => Embedding::Table(token_embd.to_quant(c.vocab, h, QuantType::Q8_0)?),
        },
    };
    // Whatever of the files is still resident (the metadata, norms and biases) can go too.
    maps.release_all();
    Ok(Model::assemble(
        config,
        kernels,
        threads,
        layers,
        output_norm,
        head,
        embedding,
    ))
}
