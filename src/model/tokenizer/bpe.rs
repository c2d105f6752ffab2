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
/// leftmost one first among equal ranks (as Hugging Face's BPE does).
pub(crate) fn merge(syms: &mut Vec<u32>, merges: &Merges, out: &mut Vec<u32>) {
    loop {
        let mut best: Option<(u32, usize, u32)> = None;
        for (i, w) in syms.windows(2).enumerate() {
            if let Some(&(rank, id)) = merges.get(&(w[0], w[1])) {
                if best.is_none_or(|(r, _, _)| rank < r) {
                    best = Some((rank, i, id));
                }
            }
        }
        let Some((_, i, id)) = best else { break };
        syms[i] = id;
        syms.remove(i + 1);
    }
    out.extend_from_slice(syms);
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
        merge(&mut vec![0, 0, 0], &merges, &mut out);
        assert_eq!(out, [3]);
        out.clear();
        merge(&mut vec![0, 0, 0, 0], &merges, &mut out);
        assert_eq!(out, [2, 2]);
    }
}
