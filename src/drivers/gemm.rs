//! The parallel GEMM driver: one validated call split into blocks of rows and columns that the
//! pool's threads take on demand.

use crate::contract::gemm::GemmArgs;
use crate::parallel::ThreadPool;

/// Columns per task: a multiple of every kernel's column tile.
const PAR_COLS: usize = 64;
/// Rows per task.
const PAR_ROWS: usize = 64;

/// Runs `gemm` over the whole calls `part(0)`, .., `part(n_parts - 1)` (the same weights, `bias`
/// and output width `n`; the activations and outputs of consecutive row blocks of one matmul) on
/// all threads of `pool`, in blocks of rows and columns handed out on demand, column blocks
/// outer: each block of weights is read from memory once for the rows of all parts, not once
/// per part. Allocates nothing.
///
/// # Safety
/// `n_parts > 0`; every `part(i)` covers its rows `0..m` and columns `0..n` with `ldo == n`,
/// shares `part(0)`'s `w`, `n`, `k` and `bias`, and satisfies the contract of `gemm` (as after
/// validation, with `out` valid for its whole `m x n` output); the outputs do not overlap.
pub(crate) unsafe fn gemm_parallel<'a>(
    pool: &ThreadPool,
    n_parts: usize,
    part: &(dyn Fn(usize) -> GemmArgs<'a> + Sync),
    gemm: unsafe fn(&GemmArgs<'_>),
) {
    let row_blocks: usize = (0..n_parts).map(|i| part(i).m.div_ceil(PAR_ROWS)).sum();
    let col_blocks = part(0).n.div_ceil(PAR_COLS);
    pool.run(row_blocks * col_blocks, &|t| {
        // Column blocks outer: consecutive tasks share a block of weights (read from memory
        // once per call, then from cache), the activations stay in cache throughout.
        let (mut rb, cb) = (t % row_blocks, t / row_blocks);
        // The part of row block rb (counted over the parts in order), and its block within it.
        let mut args = part(0);
        for i in 1..n_parts {
            let blocks = args.m.div_ceil(PAR_ROWS);
            if rb < blocks {
                break;
            }
            rb -= blocks;
            args = part(i);
        }
        let (m, n) = (args.m, args.n);
        debug_assert!(args.rows == (0..m) && args.cols == (0..n) && args.ldo == n);
        let rows = rb * PAR_ROWS..((rb + 1) * PAR_ROWS).min(m);
        let cols = cb * PAR_COLS..((cb + 1) * PAR_COLS).min(n);
        let sub = GemmArgs {
            // SAFETY (of the add): (rows.start, cols.start) is inside the part's m x n output.
            out: unsafe { args.out.add(rows.start * n + cols.start) },
            rows,
            cols,
            ..args
        };
        // SAFETY: the caller validated every part's whole m x n call; this block is a sub-range
        // of one part's, and no other task writes its elements (the parts' outputs are disjoint).
        unsafe { gemm(&sub) };
    });
}
