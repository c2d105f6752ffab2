//! The assembly Q4_0 micro-kernels of the `NeonDot` (`asm/aarch64/q4_gemm_dotprod.S`) and
//! `NeonI8mm` (`asm/aarch64/q4_gemm_i8mm.S`) tiers: their safe wrapper, and the driver that cuts
//! a `GemmArgs` call into micro-kernel calls.
//!
//! Every routine computes `2 * np` rows (`np` = 1..=8 row pairs; or one row, GEMV) times
//! `4 * ntiles` columns over all K and stores the first `nrows` of them with bias, row stride
//! `ldo`. Each 16-row activation group is one pass over the weights. The driver calls the
//! routines straight on the caller's output for the column tiles that lie inside the requested
//! columns, and through a small scratch tile (then copies the wanted elements) for the edge tiles
//! and for a range that starts on the second row of a pair under SMMLA, so nothing outside the
//! ranges is written.

use super::act::{self, GROUP_PAIRS};
use super::pack::{self, NR, TILE_BLOCK};
use crate::contract::gemm::GemmArgs;
use crate::quant::QK;
use std::ops::Range;

/// The argument block every micro-kernel takes (offsets `ARG_*` in `asm/include/qkern_asm.h`).
#[repr(C)]
struct KernelArgs {
    w: *const u8,
    a: *const u8,
    a_scales: *const u8,
    a_stride: usize,
    kb: usize,
    ntiles: usize,
    out: *mut f32,
    ldo_bytes: usize,
    bias: *const f32,
    bias_step: usize,
    zeros: *const u8,
    nrows: usize,
}

type RawKernel = unsafe extern "C" fn(*const KernelArgs);

unsafe extern "C" {
    fn qkern_q4_mmla_p1_i8mm(args: *const KernelArgs);
    fn qkern_q4_mmla_p2_i8mm(args: *const KernelArgs);
    fn qkern_q4_mmla_p3_i8mm(args: *const KernelArgs);
    fn qkern_q4_mmla_p4_i8mm(args: *const KernelArgs);
    fn qkern_q4_mmla_p5_i8mm(args: *const KernelArgs);
    fn qkern_q4_mmla_p6_i8mm(args: *const KernelArgs);
    fn qkern_q4_mmla_p7_i8mm(args: *const KernelArgs);
    fn qkern_q4_mmla_p8_i8mm(args: *const KernelArgs);
    fn qkern_q4_mmla_gemv_i8mm(args: *const KernelArgs);
    fn qkern_q4_dot_p1_dotprod(args: *const KernelArgs);
    fn qkern_q4_dot_p2_dotprod(args: *const KernelArgs);
    fn qkern_q4_dot_p3_dotprod(args: *const KernelArgs);
    fn qkern_q4_dot_p4_dotprod(args: *const KernelArgs);
    fn qkern_q4_dot_p5_dotprod(args: *const KernelArgs);
    fn qkern_q4_dot_p6_dotprod(args: *const KernelArgs);
    fn qkern_q4_dot_p7_dotprod(args: *const KernelArgs);
    fn qkern_q4_dot_p8_dotprod(args: *const KernelArgs);
    fn qkern_q4_dot_gemv_dotprod(args: *const KernelArgs);
}

/// Which instruction set a kernel family needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Isa {
    /// SDOT kernels on [`pack::Layout::Dot`].
    Dot,
    /// SMMLA kernels on [`pack::Layout::Mmla`].
    I8mm,
}

impl Isa {
    fn supported(self) -> bool {
        match self {
            Isa::Dot => std::arch::is_aarch64_feature_detected!("dotprod"),
            Isa::I8mm => {
                std::arch::is_aarch64_feature_detected!("i8mm")
                    && std::arch::is_aarch64_feature_detected!("dotprod")
            }
        }
    }
}

/// Row shape of a micro-kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Rows {
    /// `np` row pairs, 1 ..= 8.
    Pairs(usize),
    /// One row. `Dot`: either half of a pair (the pointers address the half). `I8mm`: a pair
    /// that holds the same row twice.
    One,
}

impl Rows {
    fn count(self) -> usize {
        match self {
            Rows::Pairs(np) => 2 * np,
            Rows::One => 1,
        }
    }
}

fn raw_kernel(isa: Isa, rows: Rows) -> RawKernel {
    const MMLA: [RawKernel; 8] = [
        qkern_q4_mmla_p1_i8mm,
        qkern_q4_mmla_p2_i8mm,
        qkern_q4_mmla_p3_i8mm,
        qkern_q4_mmla_p4_i8mm,
        qkern_q4_mmla_p5_i8mm,
        qkern_q4_mmla_p6_i8mm,
        qkern_q4_mmla_p7_i8mm,
        qkern_q4_mmla_p8_i8mm,
    ];
    const DOT: [RawKernel; 8] = [
        qkern_q4_dot_p1_dotprod,
        qkern_q4_dot_p2_dotprod,
        qkern_q4_dot_p3_dotprod,
        qkern_q4_dot_p4_dotprod,
        qkern_q4_dot_p5_dotprod,
        qkern_q4_dot_p6_dotprod,
        qkern_q4_dot_p7_dotprod,
        qkern_q4_dot_p8_dotprod,
    ];
    match (isa, rows) {
        (Isa::I8mm, Rows::One) => qkern_q4_mmla_gemv_i8mm,
        (Isa::Dot, Rows::One) => qkern_q4_dot_gemv_dotprod,
        (Isa::I8mm, Rows::Pairs(np)) => MMLA[np - 1],
        (Isa::Dot, Rows::Pairs(np)) => DOT[np - 1],
    }
}

/// 64 zero bytes: the kernels zero their int32 block sums by loading them.
#[repr(C, align(64))]
struct Zeros([u8; 64]);
static ZEROS: Zeros = Zeros([0; 64]);
static ZERO_BIAS: [f32; NR] = [0.0; NR];

/// Where a micro-kernel's activation rows are: byte offsets of block 0 in the activation buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ActRows {
    /// Values of the first row pair (or of the row's half, for [`Rows::One`] on `Dot`).
    pub data: usize,
    /// Scales of the first row pair (or of the row's half).
    pub scales: usize,
    /// Bytes from one block to the next.
    pub stride: usize,
}

/// Runs one micro-kernel: `rows` rows of `a` times column tiles `t0 .. t0 + ntiles` of `w`
/// (`kb` blocks each), plus `bias` (4 values per tile, or zero), stores the first `store_rows` of
/// them into `out` with row stride `ldo`. Checks everything the routine assumes and panics
/// otherwise (internal invariants: the public API validated the user's input).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_kernel(
    isa: Isa,
    rows: Rows,
    w: &[u8],
    t0: usize,
    ntiles: usize,
    kb: usize,
    a: &[u8],
    ar: ActRows,
    bias: Option<&[f32]>,
    out: &mut [f32],
    ldo: usize,
    store_rows: usize,
) {
    assert!(
        isa.supported(),
        "CPU lacks the {isa:?} micro-kernels' features"
    );
    assert!(ntiles >= 1 && kb >= 1);
    // Weights: ntiles whole tiles of kb blocks, contiguous.
    let w_off = pack::tile_offset(t0, kb);
    assert!(w_off + ntiles * kb * TILE_BLOCK <= w.len());
    // Activations: each block reads 64 bytes per pair (from `data`), and 16 bytes per pair
    // (4 for a single row) from `scales`.
    let pairs = match rows {
        Rows::Pairs(np) => {
            assert!((1..=GROUP_PAIRS).contains(&np));
            np
        }
        Rows::One => 1,
    };
    let last = (kb - 1) * ar.stride;
    assert!(ar.data + last + pairs * act::PAIR_DATA <= a.len());
    assert!(ar.scales + last + pairs * act::PAIR_SCALES <= a.len());
    // Output: store_rows rows of 4 * ntiles values, stride ldo.
    assert!((1..=rows.count()).contains(&store_rows));
    assert!(ldo >= NR * ntiles);
    assert!((store_rows - 1) * ldo + NR * ntiles <= out.len());
    let (bias, bias_step) = match bias {
        Some(b) => {
            assert!(b.len() >= NR * ntiles);
            (b.as_ptr(), NR * 4)
        }
        None => (ZERO_BIAS.as_ptr(), 0),
    };
    let args = KernelArgs {
        w: w[w_off..].as_ptr(),
        a: a[ar.data..].as_ptr(),
        a_scales: a[ar.scales..].as_ptr(),
        a_stride: ar.stride,
        kb,
        ntiles,
        out: out.as_mut_ptr(),
        ldo_bytes: ldo * 4,
        bias,
        bias_step,
        zeros: ZEROS.0.as_ptr(),
        nrows: store_rows,
    };
    // SAFETY: the CPU has the routine's features (checked above); it reads `ntiles * kb` weight
    // blocks from `w`, `kb` blocks of its pairs' values and scales at `stride` from `a`, 4 bias
    // values per tile (or the 4 zeros, step 0), 64 zero bytes, and writes `store_rows` rows of
    // 4 * ntiles values with stride `ldo` into `out`: all inside the slices, as checked above.
    // It saves the callee-saved registers it uses.
    unsafe { raw_kernel(isa, rows)(&args) };
}

/// Column tiles per scratch call.
const SCRATCH_TILES: usize = 16;
const SCRATCH_LD: usize = SCRATCH_TILES * NR;

/// Cuts one `gemm` call into micro-kernel calls.
struct Driver<'a> {
    isa: Isa,
    w: &'a [u8],
    a: &'a [u8],
    kb: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    bias: Option<&'a [f32]>,
    /// Element (rows.start, cols.start) first, row stride `ldo`.
    out: &'a mut [f32],
    ldo: usize,
}

impl Driver<'_> {
    /// Rows from `row0` through kernel `rows` at `ar`, storing rows `want` (a non-empty part of
    /// `self.rows` and of the kernel's rows) for every column of `self.cols`. Tiles whose columns
    /// all lie in `cols` go straight to the output when `want` starts at `row0`; the rest through
    /// a scratch tile.
    fn chunk(&mut self, rows: Rows, ar: ActRows, row0: usize, want: Range<usize>) {
        let (t_lo, t_hi) = (self.cols.start / NR, self.cols.end.div_ceil(NR));
        let (f_lo, f_hi) = (self.cols.start.div_ceil(NR), self.cols.end / NR);
        if want.start == row0 && f_lo < f_hi {
            let start = (row0 - self.rows.start) * self.ldo + f_lo * NR - self.cols.start;
            run_kernel(
                self.isa,
                rows,
                self.w,
                f_lo,
                f_hi - f_lo,
                self.kb,
                self.a,
                ar,
                self.bias.map(|b| &b[f_lo * NR..]),
                &mut self.out[start..],
                self.ldo,
                want.len(),
            );
            if f_lo > t_lo {
                self.scratch(rows, ar, row0, &want, t_lo..f_lo);
            }
            if t_hi > f_hi {
                self.scratch(rows, ar, row0, &want, f_hi..t_hi);
            }
        } else {
            self.scratch(rows, ar, row0, &want, t_lo..t_hi);
        }
    }

    /// Tiles `tiles` through a scratch tile; copies rows `want` and the columns in `cols`.
    fn scratch(
        &mut self,
        rows: Rows,
        ar: ActRows,
        row0: usize,
        want: &Range<usize>,
        tiles: Range<usize>,
    ) {
        let mut tmp = [0f32; 2 * GROUP_PAIRS * SCRATCH_LD];
        let mut t = tiles.start;
        while t < tiles.end {
            let nt = (tiles.end - t).min(SCRATCH_TILES);
            let (a, w, kb) = (self.a, self.w, self.kb);
            let n_rows = want.end - row0;
            run_kernel(
                self.isa, rows, w, t, nt, kb, a, ar, None, &mut tmp, SCRATCH_LD, n_rows,
            );
            let c_lo = (t * NR).max(self.cols.start);
            let c_hi = ((t + nt) * NR).min(self.cols.end);
            for i in want.clone() {
                let src = &tmp[(i - row0) * SCRATCH_LD..];
                let dst = &mut self.out[(i - self.rows.start) * self.ldo..];
                for j in c_lo..c_hi {
                    let b = self.bias.map_or(0.0, |b| b[j]);
                    dst[j - self.cols.start] = src[j - t * NR] + b;
                }
            }
            t += nt;
        }
    }
}

/// The `gemm` of the asm tiers: per 16-row group, one micro-kernel pass over the weights for all
/// its wanted rows (a row range that starts on the second row of a pair takes that row first,
/// on its own).
///
/// # Safety
/// See `WeightKernel::gemm`; `w` was packed with the layout of `isa`.
pub(crate) unsafe fn gemm(isa: Isa, args: &GemmArgs<'_>) {
    let (m, k) = (args.m, args.k);
    let out_len = (args.rows.len() - 1) * args.ldo + args.cols.len();
    // SAFETY: `matmul_range` hands over its `&mut [f32]` output, which holds `out_len` elements
    // from `args.out` (it checked that length); nothing else uses it during this call. Only
    // elements of the requested ranges are written (`Driver` stores nothing else).
    let out = unsafe { std::slice::from_raw_parts_mut(args.out, out_len) };
    let mut d = Driver {
        isa,
        w: args.w.bytes(),
        a: args.a.bytes(),
        kb: k / QK,
        rows: args.rows.clone(),
        cols: args.cols.clone(),
        bias: args.bias,
        out,
        ldo: args.ldo,
    };
    let group_rows = 2 * GROUP_PAIRS;
    let (r_lo, r_hi) = (args.rows.start, args.rows.end);
    for g in r_lo / group_rows..r_hi.div_ceil(group_rows) {
        let grp = act::group(g, m, k);
        let g0 = g * group_rows;
        let pair_rows = |i: usize| {
            let q = (i - g0) / 2;
            ActRows {
                data: grp.data(q),
                scales: grp.scales(q),
                stride: grp.stride,
            }
        };
        // Rows of this group to compute.
        let (mut lo, hi) = (r_lo.max(g0), r_hi.min(g0 + 2 * grp.pairs));
        if lo % 2 == 1 {
            // The second row of a pair, alone.
            let ar = pair_rows(lo);
            match isa {
                Isa::Dot => {
                    let ar = ActRows {
                        data: ar.data + 8,
                        scales: ar.scales + 8,
                        ..ar
                    };
                    d.chunk(Rows::One, ar, lo, lo..lo + 1);
                }
                Isa::I8mm => d.chunk(Rows::Pairs(1), ar, lo - 1, lo..lo + 1),
            }
            lo += 1;
        }
        if lo == hi {
            continue;
        }
        let ar = pair_rows(lo);
        // SDOT's single-row kernel reads any row; SMMLA's needs a pair that holds its row twice.
        let one = hi - lo == 1 && (isa == Isa::Dot || (lo + 1 == m && m % 2 == 1));
        let rows = if one {
            Rows::One
        } else {
            Rows::Pairs((hi - lo).div_ceil(2))
        };
        d.chunk(rows, ar, lo, lo..hi);
    }
}
