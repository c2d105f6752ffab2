//! Byte-level BPE: GPT-2's byte-to-character map and merging by rank.

use std::collections::HashMap;

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100 onwards, in byte order. Vocabulary strings are written in these characters.
pub(crate) fn byte_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in map.iter_mut().enumerate() {
        let printable = (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
        let cp = if printable {
            b as u32
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(cp).expect("below U+0200");
    }
    map
}

/// The inverse of [`byte_chars`]: a vocabulary string back to its bytes, or `None` if it holds a
/// character outside the map.
pub(crate) fn string_bytes(s: &str, inverse: &HashMap<char, u8>) -> Option<Vec<u8>> {
    s.chars().map(|c| inverse.get(&c).copied()).collect()
}

/// Merge table: `(left, right) -> (rank, merged id)`.
pub(crate) type Merges = HashMap<(u32, u32), (u32, u32)>;

/// Runs BPE on one piece whose bytes are the ids `syms` (one per byte, already looked up),
/// appending the final ids to `out`. Repeatedly merges the adjacent pair of lowest rank, the
/// leftmost one first among equal ranks, as Hugging Face's BPE does and the same way: a heap of
/// candidate merges over a linked list of symbols, O(n log n) in the piece length (a long piece,
/// say a run of letters without spaces, costs no more than its length).
pub(crate) fn merge(syms: &mut [u32], merges: &Merges, out: &mut Vec<u32>) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = syms.len();
    if n < 2 {
        out.extend_from_slice(syms);
        return;
    }
    // prev / next links (usize::MAX: none) and whether a symbol is still there.
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let mut next: Vec<usize> = (1..=n)
        .map(|i| if i == n { usize::MAX } else { i })
        .collect();
    let mut alive = vec![true; n];
    let mut heap = BinaryHeap::new();
    for i in 0..n - 1 {
        if let Some(&(rank, id)) = merges.get(&(syms[i], syms[i + 1])) {
            heap.push(Reverse((rank, i, id)));
        }
    }
    while let Some(Reverse((_, i, id))) = heap.pop() {
        let j = next[i];
        if !alive[i] || j == usize::MAX {
            continue;
        }
        // Skip a stale entry: the pair at i is no longer the one this merge was for.
        if merges.get(&(syms[i], syms[j])).map(|m| m.1) != Some(id) {
            continue;
        }
        syms[i] = id;
        alive[j] = false;
        next[i] = next[j];
        if next[j] != usize::MAX {
            prev[next[j]] = i;
        }
        let p = prev[i];
        if p != usize::MAX {
            if let Some(&(rank, m)) = merges.get(&(syms[p], id)) {
                heap.push(Reverse((rank, p, m)));
            }
        }
        if next[i] != usize::MAX {
            if let Some(&(rank, m)) = merges.get(&(id, syms[next[i]])) {
                heap.push(Reverse((rank, i, m)));
            }
        }
    }
    out.extend(syms.iter().zip(&alive).filter(|x| *x.1).map(|x| *x.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_gpt2() {
        let m = byte_chars();
        assert_eq!(m[b'a' as usize], 'a');
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
        assert_eq!(m[0], 'Ā');
        assert_eq!(m[0xad], 'Ń');
        let mut all: Vec<char> = m.to_vec();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 256);
    }

    #[test]
    fn merges_by_rank_leftmost_first() {
        // a=0 b=1; (a,a)->2 rank 0; (2,a)->3 rank 1
        let merges: Merges = [((0, 0), (0, 2)), ((2, 0), (1, 3))].into_iter().collect();
        let mut out = Vec::new();
        merge(&mut [0, 0, 0], &merges, &mut out);
        assert_eq!(out, [3]);
        out.clear();
        merge(&mut [0, 0, 0, 0], &merges, &mut out);
        assert_eq!(out, [2, 2]);
    }
}
