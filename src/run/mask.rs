//! The token masks of a masked tokenizer, drawn the same way wherever they
//! are needed: by the libtorch backend when it applies `mask_tokens`, and by
//! the built-in baselines (`crate::baseline`), which must predict exactly
//! the entries the model is scored on.
//!
//! A mask depends only on a key and the sizes: each sample of a batch has
//! its own stream, `derive(key, first + i)`, and hides `round(ratio * P)` of
//! the `P` positions of the drawn dims (a partial Fisher-Yates shuffle), so
//! a pipeline stage, a data-parallel rank or a baseline that never ran the
//! node draws the same mask again.

use crate::base::rng::{derive, SplitMix64};

/// The key `mask_tokens` draws from in a forward pass whose step (or
/// evaluation batch) has key `step_key`: one key for every micro-batch of
/// the step, whose samples `first` tells apart.
pub fn application_key(step_key: u64) -> u64 {
    derive(step_key, 0)
}

/// The mask over `batch` samples starting at sample `first` of the step,
/// each over drawn dims of sizes `dims`: `[batch, dims...]` row-major, true
/// where hidden. `ratio` is clamped to the positions there are.
pub fn draw(key: u64, first: usize, batch: usize, ratio: f64, dims: &[usize]) -> Vec<bool> {
    let p: usize = dims.iter().product();
    let k = ((ratio * p as f64).round().max(0.0) as usize).min(p);
    let mut mask = vec![false; batch * p];
    for i in 0..batch {
        let mut rng = SplitMix64::new(derive(key, (first + i) as u64));
        let mut idx: Vec<usize> = (0..p).collect();
        for j in 0..k {
            let r = j + rng.below((p - j) as u64) as usize;
            idx.swap(j, r);
            mask[i * p + idx[j]] = true;
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sample_hides_the_rounded_share_of_its_positions() {
        let m = draw(7, 0, 3, 0.25, &[4, 5]);
        assert_eq!(m.len(), 60);
        for s in m.chunks(20) {
            assert_eq!(s.iter().filter(|&&x| x).count(), 5);
        }
        // Samples differ, and a sample's mask depends on its index in the
        // step, not on the batch it is drawn in.
        assert_ne!(&m[..20], &m[20..40]);
        assert_eq!(&draw(7, 1, 1, 0.25, &[4, 5])[..], &m[20..40]);
        assert_ne!(draw(8, 0, 1, 0.25, &[4, 5]), &m[..20]);
    }

    #[test]
    fn ratios_beyond_the_positions_are_clamped() {
        assert!(draw(1, 0, 2, 1.5, &[3]).iter().all(|&x| x));
        assert!(draw(1, 0, 2, -0.5, &[3]).iter().all(|&x| !x));
        assert!(draw(1, 0, 2, 0.5, &[]).len() == 2);
    }
}
