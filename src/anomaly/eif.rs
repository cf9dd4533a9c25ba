//! A seeded extended isolation forest (Hariri, Carrasco Kind & Brunner, 2018), written for
//! promcast's feature vectors.
//!
//! Why our own and not the `extended-isolation-forest` crate it replaces: that crate takes no
//! seed (so every training differed and no figure reproduced), stores each node as a separate
//! allocation with `f64` vectors, and draws split points with `rand`'s `Uniform::new(min, max)`,
//! which practically hangs when a node's minimum and maximum are a few ulps apart.
//!
//! Here a forest is a pure function of its training rows and a seed: the subsample of each
//! tree, the random normal of each split and its intercept come from one SplitMix64 stream
//! seeded with `seed` mixed with a hash of the rows. All trees live in one flat node array
//! (`f32`, 36 bytes a node, children adjacent), so scoring walks contiguous memory.
//!
//! The algorithm is the paper's, at full extension level: at each node a normal `n` with
//! i.i.d. standard-normal components and an intercept `p` drawn uniformly in the bounding box
//! of the node's rows; rows with `(x − p)·n ≤ 0` go left. Trees stop at depth
//! `⌈log2 sample⌉` or at one row; the path length of a point is its leaf depth plus
//! `c(rows in the leaf)`, and the score is `2^(−mean path / c(sample))`.

use crate::rng::{mix, SplitMix64};

/// One node: an internal node splits on `x·normal ≤ split`; a leaf (`left == 0`: no node is
/// ever the child of index 0, which is the first tree's root) holds its path length in
/// `split`.
#[derive(Debug, Clone, Copy)]
struct Node<const D: usize> {
    normal: [f32; D],
    split: f32,
    left: u32,
}

/// A trained forest over `D`-dimensional rows.
#[derive(Debug, Clone)]
pub struct Eif<const D: usize> {
    nodes: Vec<Node<D>>,
    roots: Vec<u32>,
    /// `c(sample)`: the average path length the scores are normalised by.
    norm: f64,
}

/// Average path length of an unsuccessful search in a binary search tree of `n` keys: the
/// depth a leaf holding `n` rows stands for.
pub fn c(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

/// A hash of the rows' bits, so that the same rows give the same forest.
fn hash_rows<const D: usize>(rows: &[[f32; D]]) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3_u64;
    for r in rows {
        for v in r {
            h = mix(h ^ v.to_bits() as u64).wrapping_add(0x9e37_79b9);
        }
    }
    h ^ rows.len() as u64
}

struct Builder<'a, const D: usize> {
    rows: &'a [[f32; D]],
    rng: SplitMix64,
    nodes: Vec<Node<D>>,
    max_depth: usize,
}

impl<const D: usize> Builder<'_, D> {
    fn leaf(&mut self, slot: usize, depth: usize, n: usize) {
        self.nodes[slot] = Node {
            normal: [0.0; D],
            split: (depth as f64 + c(n)) as f32,
            left: 0,
        };
    }

    /// Grows the subtree of the rows `idx` into `slot`.
    fn grow(&mut self, slot: usize, idx: &mut [u32], depth: usize) {
        if depth >= self.max_depth || idx.len() <= 1 {
            self.leaf(slot, depth, idx.len());
            return;
        }
        let mut lo = [f32::INFINITY; D];
        let mut hi = [f32::NEG_INFINITY; D];
        for &i in idx.iter() {
            for (d, &v) in self.rows[i as usize].iter().enumerate() {
                lo[d] = lo[d].min(v);
                hi[d] = hi[d].max(v);
            }
        }
        let mut normal = [0f32; D];
        let mut split = 0f64;
        for d in 0..D {
            let n = self.rng.normal() as f32;
            let p = lo[d] as f64 + self.rng.unit() * (hi[d] as f64 - lo[d] as f64);
            normal[d] = n;
            split += p * n as f64;
        }
        let split = split as f32;
        // Partition in place: rows with x·n ≤ split first.
        let mut k = 0;
        for j in 0..idx.len() {
            if dot(&self.rows[idx[j] as usize], &normal) <= split {
                idx.swap(j, k);
                k += 1;
            }
        }
        let left = self.nodes.len();
        self.nodes.extend([self.nodes[slot]; 2]);
        self.nodes[slot] = Node {
            normal,
            split,
            left: left as u32,
        };
        let (l, r) = idx.split_at_mut(k);
        self.grow(left, l, depth + 1);
        self.grow(left + 1, r, depth + 1);
    }
}

#[inline]
fn dot<const D: usize>(x: &[f32; D], n: &[f32; D]) -> f32 {
    let mut s = 0.0f32;
    for d in 0..D {
        s += x[d] * n[d];
    }
    s
}

impl<const D: usize> Eif<D> {
    /// Trains `trees` trees on subsamples of `sample` rows (all rows when fewer) drawn
    /// without replacement. `rows` must be finite and non-empty.
    pub fn train(rows: &[[f32; D]], trees: usize, sample: usize, seed: u64) -> Self {
        assert!(!rows.is_empty(), "Eif::train needs rows");
        let sample = sample.clamp(1, rows.len());
        let max_depth = (sample as f64).log2().ceil().max(1.0) as usize;
        let mut b = Builder {
            rows,
            rng: SplitMix64::new(mix(seed) ^ hash_rows(rows)),
            nodes: Vec::with_capacity(trees * (2 * sample).min(1 << (max_depth + 1))),
            max_depth,
        };
        let mut all: Vec<u32> = (0..rows.len() as u32).collect();
        let mut roots = Vec::with_capacity(trees);
        for _ in 0..trees {
            // Partial Fisher-Yates: the first `sample` entries become the subsample.
            for j in 0..sample {
                let k = j + b.rng.below(rows.len() - j);
                all.swap(j, k);
            }
            let mut idx = all[..sample].to_vec();
            let root = b.nodes.len();
            b.nodes.push(Node {
                normal: [0.0; D],
                split: 0.0,
                left: 0,
            });
            b.grow(root, &mut idx, 0);
            roots.push(root as u32);
        }
        let mut nodes = b.nodes;
        nodes.shrink_to_fit();
        Self {
            nodes,
            roots,
            norm: c(sample),
        }
    }

    /// The anomaly score in (0, 1]: about 0.5 or below for typical rows, towards 1 for
    /// isolated ones.
    pub fn score(&self, x: &[f32; D]) -> f64 {
        let mut total = 0.0f64;
        for &root in &self.roots {
            let mut i = root as usize;
            loop {
                let n = &self.nodes[i];
                if n.left == 0 {
                    total += n.split as f64;
                    break;
                }
                i = n.left as usize + usize::from(dot(x, &n.normal) > n.split);
            }
        }
        let mean = total / self.roots.len().max(1) as f64;
        if self.norm > 0.0 {
            2f64.powf(-mean / self.norm)
        } else {
            0.5
        }
    }

    /// Trees in the forest.
    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// Nodes over all trees.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Heap bytes of the node array and the roots.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node<D>>() + self.roots.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(n: usize, seed: u64) -> Vec<[f32; 3]> {
        let mut r = SplitMix64::new(seed);
        (0..n)
            .map(|_| [r.normal() as f32, r.normal() as f32, r.normal() as f32])
            .collect()
    }

    #[test]
    fn same_rows_and_seed_give_the_same_forest() {
        let rows = cloud(500, 1);
        let a = Eif::train(&rows, 25, 128, 7);
        let b = Eif::train(&rows, 25, 128, 7);
        let c = Eif::train(&rows, 25, 128, 8);
        let x = [0.3, -1.2, 2.0];
        assert_eq!(a.score(&x).to_bits(), b.score(&x).to_bits());
        assert_ne!(a.score(&x).to_bits(), c.score(&x).to_bits());
    }

    #[test]
    fn outliers_score_higher_than_the_bulk() {
        let rows = cloud(1000, 2);
        let f = Eif::train(&rows, 100, 256, 0);
        let centre = f.score(&[0.0, 0.0, 0.0]);
        let far = f.score(&[6.0, -6.0, 6.0]);
        assert!(centre < 0.5, "centre {centre}");
        assert!(far > 0.7, "far {far}");
        // Mean over the training rows sits near 0.5 or below, as in the paper.
        let mean: f64 = rows.iter().map(|r| f.score(r)).sum::<f64>() / rows.len() as f64;
        assert!(mean > 0.3 && mean < 0.55, "mean {mean}");
    }

    #[test]
    fn identical_rows_and_tiny_samples_terminate() {
        let rows = vec![[1.0f32, 1.0, 1.0]; 300];
        let f = Eif::train(&rows, 10, 128, 0);
        assert!(f.score(&[1.0, 1.0, 1.0]).is_finite());
        let one = Eif::train(&rows[..1], 5, 128, 0);
        assert_eq!(one.nodes(), 5);
        assert!(one.score(&[0.0; 3]).is_finite());
    }

    #[test]
    fn path_length_normaliser() {
        assert_eq!(c(1), 0.0);
        assert_eq!(c(2), 1.0);
        // c(256) from the isolation forest paper: about 10.24.
        assert!((c(256) - 10.244).abs() < 0.01, "{}", c(256));
    }
}
