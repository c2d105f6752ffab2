//! Choosing the next token from logits: greedy, or sampling with temperature, top-k, top-p and
//! min-p, after a repetition penalty; seeded, so a seed gives the same tokens every run.
//!
//! The steps follow Hugging Face transformers' logits processors, in its order: repetition
//! penalty (on every id of the history once: a positive logit divided by the penalty, a negative
//! one multiplied), then temperature, top-k (keeps every logit at least the k-th largest, ties
//! included), top-p (keeps the most probable tokens until their probability reaches `top_p`, at
//! least one), min-p (keeps the tokens whose probability is at least `min_p` times the largest),
//! then a draw from what is left. Temperature 0 is greedy: the largest logit after the penalty,
//! the lowest id among equals.

use crate::{Error, Result};

/// Sampling settings (the defaults: greedy, no penalty).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerOptions {
    /// 0: greedy; otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep the `top_k` largest logits (0: off).
    pub top_k: usize,
    /// Nucleus sampling threshold in (0, 1] (1: off).
    pub top_p: f32,
    /// Keep tokens with probability at least `min_p` times the largest, in [0, 1] (0: off).
    pub min_p: f32,
    /// Repetition penalty (1: off), as Hugging Face's `repetition_penalty`.
    pub repeat_penalty: f32,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            seed: 0,
        }
    }
}

/// xoshiro256** seeded through splitmix64: small, fast, and the same on every platform.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Picks tokens from logits by its [`SamplerOptions`].
#[derive(Clone, Debug)]
pub struct Sampler {
    o: SamplerOptions,
    rng: Rng,
}

impl Sampler {
    /// Checks the options: temperature finite and >= 0, top_p in (0, 1], min_p in [0, 1],
    /// repeat_penalty finite and > 0.
    pub fn new(o: SamplerOptions) -> Result<Sampler> {
        let bad = |s: String| Err(Error::ShapeMismatch(format!("sampler: {s}")));
        if !(o.temperature.is_finite() && o.temperature >= 0.0) {
            return bad(format!("temperature {} must be >= 0", o.temperature));
        }
        if !(o.top_p > 0.0 && o.top_p <= 1.0) {
            return bad(format!("top_p {} must be in (0, 1]", o.top_p));
        }
        if !(0.0..=1.0).contains(&o.min_p) {
            return bad(format!("min_p {} must be in [0, 1]", o.min_p));
        }
        if !(o.repeat_penalty.is_finite() && o.repeat_penalty > 0.0) {
            return bad(format!("repeat_penalty {} must be > 0", o.repeat_penalty));
        }
        Ok(Sampler {
            rng: Rng::new(o.seed),
            o,
        })
    }

    /// The options.
    pub fn options(&self) -> &SamplerOptions {
        &self.o
    }

    /// Whether this sampler is greedy (temperature 0 or top-k 1).
    pub fn is_greedy(&self) -> bool {
        self.o.temperature == 0.0 || self.o.top_k == 1
    }

    /// The logits after the repetition penalty over `history` (each id once; ids outside the
    /// logits are ignored). NaN becomes -inf.
    pub fn penalized(&self, logits: &[f32], history: &[u32]) -> Vec<f32> {
        let mut l: Vec<f32> = logits
            .iter()
            .map(|&x| if x.is_nan() { f32::NEG_INFINITY } else { x })
            .collect();
        let p = self.o.repeat_penalty;
        if p != 1.0 {
            let mut ids: Vec<u32> = history.to_vec();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                if let Some(x) = l.get_mut(id as usize) {
                    *x = if *x < 0.0 { *x * p } else { *x / p };
                }
            }
        }
        l
    }

    /// The tokens a draw can pick and their probabilities (summing to 1), most probable first
    /// (ties: lower id first). Greedy: the one token with probability 1.
    pub fn distribution(&self, logits: &[f32], history: &[u32]) -> Result<Vec<(u32, f32)>> {
        self.candidates(logits, history, true)
    }

    /// [`distribution`](Self::distribution); with `sort_all` false, a set without any cut stays
    /// in id order (a draw does not need the order, and sorting a whole vocabulary would cost
    /// milliseconds per token). Cuts sort only the prefix they need: top-k selects its k, top-p
    /// and min-p grow a sorted prefix (64, 512, ... tokens) until it holds the cut point.
    fn candidates(
        &self,
        logits: &[f32],
        history: &[u32],
        sort_all: bool,
    ) -> Result<Vec<(u32, f32)>> {
        let l = self.penalized(logits, history);
        let best = argmax(&l).ok_or_else(|| {
            Error::ShapeMismatch("sampler: no finite logit to choose from".into())
        })?;
        if self.is_greedy() {
            return Ok(vec![(best, 1.0)]);
        }
        let t = self.o.temperature;
        let mut c: Vec<(u32, f32)> = l
            .iter()
            .enumerate()
            .filter(|(_, x)| x.is_finite())
            .map(|(i, &x)| (i as u32, x / t))
            .collect();
        // The largest logit (an infinite one was the argmax but is not among the candidates).
        if c.is_empty() || l[best as usize] == f32::INFINITY {
            return Ok(vec![(best, 1.0)]);
        }
        let m = (l[best as usize] / t) as f64;
        let w = |x: f32| (x as f64 - m).exp();
        let mut sorted = 0;
        if self.o.top_k > 0 && self.o.top_k < c.len() {
            sorted = sort_prefix(&mut c, self.o.top_k);
            c.truncate(sorted);
        }
        let (cut_p, cut_min) = (self.o.top_p < 1.0, self.o.min_p > 0.0);
        if cut_p || cut_min {
            let total: f64 = c.iter().map(|x| w(x.1)).sum();
            let mut want = 64;
            loop {
                let want_now = want.min(c.len());
                if sorted < want_now {
                    sorted = sort_prefix(&mut c, want_now);
                }
                let pmax = w(c[0].1) / total;
                let mut cum = 0.0;
                let mut keep = None;
                for (i, x) in c[..sorted].iter().enumerate() {
                    let p = w(x.1) / total;
                    let over_p = cut_p && cum >= self.o.top_p as f64;
                    let under_min = cut_min && p < self.o.min_p as f64 * pmax;
                    if over_p || under_min {
                        keep = Some(i.max(1));
                        break;
                    }
                    cum += p;
                }
                if let Some(k) = keep {
                    c.truncate(k);
                    break;
                }
                if sorted >= c.len() {
                    break;
                }
                want = want.saturating_mul(8);
            }
        } else if sort_all && sorted < c.len() {
            c.sort_by(desc);
        }
        let total: f64 = c.iter().map(|x| w(x.1)).sum();
        Ok(c.into_iter()
            .map(|(id, x)| (id, (w(x) / total) as f32))
            .collect())
    }

    /// Picks the next token from `logits` given the ids so far (`history`, for the penalty).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        let d = self.candidates(logits, history, false)?;
        if d.len() == 1 {
            return Ok(d[0].0);
        }
        let u = self.rng.next_f64();
        let mut cum = 0.0f64;
        for &(id, p) in &d {
            cum += p as f64;
            if u < cum {
                return Ok(id);
            }
        }
        Ok(d[d.len() - 1].0)
    }
}

/// Larger value first, then lower id.
fn desc(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Puts the `k` largest of `c` (and any others equal to the k-th) first, sorted by [`desc`];
/// returns how many that is.
fn sort_prefix(c: &mut [(u32, f32)], k: usize) -> usize {
    if k >= c.len() {
        c.sort_by(desc);
        return c.len();
    }
    c.select_nth_unstable_by(k - 1, desc);
    let v = c[k - 1].1;
    let mut end = k;
    for i in k..c.len() {
        if c[i].1 == v {
            c.swap(i, end);
            end += 1;
        }
    }
    c[..end].sort_by(desc);
    end
}

/// Index of the largest finite value (the first among equals), `None` if there is none.
pub fn argmax(v: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in v.iter().enumerate() {
        if !x.is_nan() && x != f32::NEG_INFINITY && best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(t: f32) -> SamplerOptions {
        SamplerOptions {
            temperature: t,
            ..SamplerOptions::default()
        }
    }

    fn ids(d: &[(u32, f32)]) -> Vec<u32> {
        d.iter().map(|x| x.0).collect()
    }

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(SamplerOptions::default()).unwrap();
        let l = [0.1, 3.0, -1.0, 3.0, 2.9];
        assert_eq!(s.sample(&l, &[]).unwrap(), 1); // first of the equal maxima
        assert_eq!(s.sample(&[f32::NAN, -5.0], &[]).unwrap(), 1);
        assert!(s.sample(&[f32::NAN, f32::NEG_INFINITY], &[]).is_err());
        assert!(s.sample(&[], &[]).is_err());
        // top-k = 1 is greedy at any temperature.
        let mut k1 = Sampler::new(SamplerOptions {
            top_k: 1,
            temperature: 5.0,
            seed: 3,
            ..SamplerOptions::default()
        })
        .unwrap();
        for _ in 0..50 {
            assert_eq!(k1.sample(&l, &[]).unwrap(), 1);
        }
    }

    #[test]
    fn seeded_is_deterministic() {
        let l: Vec<f32> = (0..100).map(|i| ((i * 37 % 11) as f32) * 0.3).collect();
        let o = SamplerOptions {
            temperature: 1.0,
            seed: 42,
            ..SamplerOptions::default()
        };
        let run = |o: &SamplerOptions| {
            let mut s = Sampler::new(o.clone()).unwrap();
            (0..200)
                .map(|_| s.sample(&l, &[]).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run(&o);
        assert_eq!(a, run(&o));
        assert_ne!(
            a,
            run(&SamplerOptions {
                seed: 43,
                ..o.clone()
            })
        );
        // It samples: more than one distinct token.
        let mut d = a.clone();
        d.sort();
        d.dedup();
        assert!(d.len() > 5);
    }

    #[test]
    fn top_k_top_p_min_p_cut_sets() {
        // Probabilities at temperature 1: ln of [0.5, 0.25, 0.15, 0.1].
        let l: Vec<f32> = [0.1f32, 0.5, 0.15, 0.25].iter().map(|p| p.ln()).collect();
        let d = |o: SamplerOptions| Sampler::new(o).unwrap().distribution(&l, &[]).unwrap();
        let all = d(opts(1.0));
        assert_eq!(ids(&all), [1, 3, 2, 0]);
        assert!((all[0].1 - 0.5).abs() < 1e-6 && (all[3].1 - 0.1).abs() < 1e-6);
        let k2 = d(SamplerOptions {
            top_k: 2,
            ..opts(1.0)
        });
        assert_eq!(ids(&k2), [1, 3]);
        assert!((k2[0].1 - 2.0 / 3.0).abs() < 1e-6);
        // top-p 0.5: 0.5 reaches it; 0.6: needs 0.25 too; 0.8: 0.5 + 0.25 < 0.8, so 0.15 too.
        assert_eq!(
            ids(&d(SamplerOptions {
                top_p: 0.5,
                ..opts(1.0)
            })),
            [1]
        );
        assert_eq!(
            ids(&d(SamplerOptions {
                top_p: 0.6,
                ..opts(1.0)
            })),
            [1, 3]
        );
        assert_eq!(
            ids(&d(SamplerOptions {
                top_p: 0.8,
                ..opts(1.0)
            })),
            [1, 3, 2]
        );
        // min-p 0.29: threshold 0.145 keeps 0.5, 0.25, 0.15; 0.31 (0.155) drops 0.15.
        assert_eq!(
            ids(&d(SamplerOptions {
                min_p: 0.29,
                ..opts(1.0)
            })),
            [1, 3, 2]
        );
        assert_eq!(
            ids(&d(SamplerOptions {
                min_p: 0.31,
                ..opts(1.0)
            })),
            [1, 3]
        );
        // Temperature sharpens before the cut: at 0.5 the probabilities are 25:6.25:2.25:1.
        let t = d(SamplerOptions {
            top_p: 0.7,
            ..opts(0.5)
        });
        assert_eq!(ids(&t), [1]);
        // Ties at the k-th value are all kept.
        let tie = Sampler::new(SamplerOptions {
            top_k: 2,
            ..opts(1.0)
        })
        .unwrap()
        .distribution(&[1.0, 2.0, 1.0, 0.0], &[])
        .unwrap();
        assert_eq!(ids(&tie), [1, 0, 2]);
    }

    #[test]
    fn cut_sets_on_a_large_vocabulary() {
        // 5000 logits with a slowly decaying tail: top-p has to grow the sorted prefix.
        let l: Vec<f32> = (0..5000u32)
            .map(|i| -((i.wrapping_mul(2654435761) % 5000) as f32) * 0.002)
            .collect();
        let mut order: Vec<(u32, f32)> =
            l.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
        order.sort_by(desc);
        let w: Vec<f64> = order
            .iter()
            .map(|x| ((x.1 - order[0].1) as f64).exp())
            .collect();
        let total: f64 = w.iter().sum();
        for top_p in [0.1f32, 0.5, 0.9, 0.99] {
            let s = Sampler::new(SamplerOptions { top_p, ..opts(1.0) }).unwrap();
            let d = s.distribution(&l, &[]).unwrap();
            let mut cum = 0.0;
            let n = w.iter().take_while(|&&x| {
                let before = cum;
                cum += x / total;
                before < top_p as f64
            });
            let n = n.count();
            assert_eq!(d.len(), n, "top_p {top_p}");
            assert_eq!(ids(&d), order[..n].iter().map(|x| x.0).collect::<Vec<_>>());
        }
        let s = Sampler::new(SamplerOptions {
            min_p: 0.05,
            ..opts(1.0)
        })
        .unwrap();
        let n = w.iter().filter(|&&x| x >= 0.05 * w[0]).count();
        assert_eq!(s.distribution(&l, &[]).unwrap().len(), n);
        // No cut: every token, and a draw picks by the same probabilities in any order.
        let s = Sampler::new(opts(1.0)).unwrap();
        assert_eq!(s.distribution(&l, &[]).unwrap().len(), 5000);
    }

    #[test]
    fn repetition_penalty_as_hugging_face() {
        let s = Sampler::new(SamplerOptions {
            repeat_penalty: 2.0,
            ..SamplerOptions::default()
        })
        .unwrap();
        let l = [4.0, -4.0, 1.0, 3.0];
        assert_eq!(s.penalized(&l, &[0, 1, 0, 1, 99]), [2.0, -8.0, 1.0, 3.0]);
        // Greedy after the penalty: token 0 (4 -> 2) loses to token 3.
        let mut s = s;
        assert_eq!(s.sample(&l, &[0]).unwrap(), 3);
    }

    #[test]
    fn bad_options_are_errors() {
        for o in [
            SamplerOptions {
                temperature: -1.0,
                ..SamplerOptions::default()
            },
            SamplerOptions {
                temperature: f32::NAN,
                ..SamplerOptions::default()
            },
            SamplerOptions {
                top_p: 0.0,
                ..SamplerOptions::default()
            },
            SamplerOptions {
                top_p: 1.5,
                ..SamplerOptions::default()
            },
            SamplerOptions {
                min_p: -0.1,
                ..SamplerOptions::default()
            },
            SamplerOptions {
                repeat_penalty: 0.0,
                ..SamplerOptions::default()
            },
        ] {
            assert!(Sampler::new(o).is_err());
        }
    }
}
