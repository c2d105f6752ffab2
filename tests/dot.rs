//! The int8 dot product (the first routine through the assembly pipeline) on every tier.

mod common;

use common::guard::Guarded;
use qkern::kernels::dot::DOT_I8_MAX_LEN;
use qkern::{dot_i8, Kernels, Tier};

fn reference(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

fn dot_matches_reference(tier: Tier) {
    let k = Kernels::for_tier(tier).unwrap();
    let mut rng = common::Rng(5);
    for len in (0..70).chain([255, 256, 257, 4096, 4111]) {
        let a: Vec<i8> = (0..len).map(|_| rng.next_u64() as i8).collect();
        let b: Vec<i8> = (0..len).map(|_| rng.next_u64() as i8).collect();
        let (ga, gb) = (Guarded::from_slice(&a), Guarded::from_slice(&b));
        assert_eq!(dot_i8(k, &ga, &gb).unwrap(), reference(&a, &b), "len {len}");
    }
    // Extremes: -128 * -128 everywhere, at the maximum length.
    let a = vec![i8::MIN; DOT_I8_MAX_LEN];
    assert_eq!(dot_i8(k, &a, &a).unwrap(), reference(&a, &a));
    assert!(dot_i8(k, &[1, 2], &[1]).is_err());
    let too_long = vec![0i8; DOT_I8_MAX_LEN + 1];
    assert!(dot_i8(k, &too_long, &too_long).is_err());
}

per_tier_test!(dot_i8_vs_reference, super::dot_matches_reference);
