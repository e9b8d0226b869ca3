//! `deepface tsne`: a 2-D t-SNE map of one layer's activations, coloured by an attribute
//! (the paper's Figure 2). Exact t-SNE after a PCA to 30 dimensions: fine for the few hundred
//! faces such a figure shows.

use std::path::Path;

use plotters::prelude::*;

use crate::util::rng::Rng;
use crate::{util::linalg, Error, Result};

/// PCA projection of `x` (n rows of length d) onto its `k` leading components.
pub fn pca(x: &[f32], n: usize, d: usize, k: usize) -> Vec<f64> {
    let mut mean = vec![0.0f64; d];
    for row in x.chunks_exact(d) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += f64::from(*v) / n as f64);
    }
    let c: Vec<Vec<f64>> = x.chunks_exact(d).map(|r| r.iter().zip(&mean).map(|(v, m)| f64::from(*v) - m).collect()).collect();
    let gram: Vec<f64> = (0..n * n).map(|ij| c[ij / n].iter().zip(&c[ij % n]).map(|(a, b)| a * b).sum()).collect();
    let k = k.min(n);
    let (vals, vecs) = linalg::top_eigen(&gram, n, k, 3);
    // Coordinates of row i on component j: u_j[i] * sqrt(lambda_j).
    (0..n).flat_map(|i| (0..k).map(|j| vecs[j][i] * vals[j].max(0.0).sqrt()).collect::<Vec<_>>()).collect()
}

/// Exact t-SNE of n points of dimension k into 2-D.
pub fn tsne(y: &[f64], n: usize, k: usize, perplexity: f64, iterations: usize, seed: u64) -> Vec<[f64; 2]> {
    let d2 = |i: usize, j: usize| (0..k).map(|c| (y[i * k + c] - y[j * k + c]).powi(2)).sum::<f64>();
    let dist: Vec<f64> = (0..n * n).map(|ij| d2(ij / n, ij % n)).collect();
    // Conditional probabilities with a per-point bandwidth found by bisection on entropy.
    let target = perplexity.min((n - 1) as f64 / 3.0).max(1.0).ln();
    let mut p = vec![0.0f64; n * n];
    for i in 0..n {
        let (mut lo, mut hi, mut beta) = (0.0f64, f64::INFINITY, 1.0 / dist[i * n..(i + 1) * n].iter().sum::<f64>().max(1e-12) * n as f64);
        for _ in 0..60 {
            let mut sum = 0.0;
            let mut h = 0.0;
            for j in (0..n).filter(|&j| j != i) {
                let e = (-beta * dist[i * n + j]).exp();
                p[i * n + j] = e;
                sum += e;
                h += beta * dist[i * n + j] * e;
            }
            let sum = sum.max(1e-300);
            let entropy = sum.ln() + h / sum;
            (0..n).for_each(|j| p[i * n + j] /= sum);
            if (entropy - target).abs() < 1e-5 {
                break;
            }
            if entropy > target {
                lo = beta;
                beta = if hi.is_finite() { 0.5 * (beta + hi) } else { beta * 2.0 };
            } else {
                hi = beta;
                beta = 0.5 * (beta + lo);
            }
        }
    }
    let sym: Vec<f64> = (0..n * n).map(|ij| ((p[ij] + p[(ij % n) * n + ij / n]) / (2.0 * n as f64)).max(1e-12)).collect();
    let mut rng = Rng::new(seed);
    let mut pos: Vec<[f64; 2]> = (0..n).map(|_| [1e-4 * f64::from(rng.normal()), 1e-4 * f64::from(rng.normal())]).collect();
    let mut vel = vec![[0.0f64; 2]; n];
    for it in 0..iterations {
        let exaggeration = if it < 250 { 12.0 } else { 1.0 };
        let momentum = if it < 250 { 0.5 } else { 0.8 };
        let mut q = vec![0.0f64; n * n];
        let mut z = 0.0;
        for i in 0..n {
            for j in (0..n).filter(|&j| j != i) {
                let v = 1.0 / (1.0 + (pos[i][0] - pos[j][0]).powi(2) + (pos[i][1] - pos[j][1]).powi(2));
                q[i * n + j] = v;
                z += v;
            }
        }
        for i in 0..n {
            let mut g = [0.0f64; 2];
            for j in (0..n).filter(|&j| j != i) {
                let w = (exaggeration * sym[i * n + j] - q[i * n + j] / z) * q[i * n + j];
                g[0] += 4.0 * w * (pos[i][0] - pos[j][0]);
                g[1] += 4.0 * w * (pos[i][1] - pos[j][1]);
            }
            for c in 0..2 {
                vel[i][c] = momentum * vel[i][c] - 200.0 * g[c];
            }
        }
        for i in 0..n {
            pos[i][0] += vel[i][0];
            pos[i][1] += vel[i][1];
        }
    }
    pos
}

/// Scatter plot: positives of the attribute in red, the rest in blue.
pub fn plot(points: &[[f64; 2]], positive: &[bool], title: &str, out: &Path) -> Result<()> {
    crate::data::card::register_font();
    let err = |e: String| Error::Image { what: out.display().to_string(), reason: e };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in points {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    let pad = 0.05 * (x1 - x0).max(y1 - y0).max(1e-9);
    let root = BitMapBackend::new(out, (640, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .build_cartesian_2d(x0 - pad..x1 + pad, y0 - pad..y1 + pad)
        .map_err(|e| err(e.to_string()))?;
    for (want, colour, label) in [(false, BLUE, "without"), (true, RED, "with")] {
        chart
            .draw_series(points.iter().zip(positive).filter(|(_, &p)| p == want).map(|(p, _)| Circle::new((p[0], p[1]), 3, colour.mix(0.7).filled())))
            .map_err(|e| err(e.to_string()))?
            .label(label)
            .legend(move |(x, y)| Circle::new((x, y), 4, colour.filled()));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Trustworthiness-style check used by the tests: the fraction of each point's `k` nearest
/// neighbours in the map that share its label.
pub fn neighbour_agreement(points: &[[f64; 2]], labels: &[bool], k: usize) -> f64 {
    let n = points.len();
    let mut agree = 0usize;
    for i in 0..n {
        let mut d: Vec<(f64, usize)> = (0..n).filter(|&j| j != i).map(|j| ((points[i][0] - points[j][0]).powi(2) + (points[i][1] - points[j][1]).powi(2), j)).collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        agree += d.iter().take(k).filter(|(_, j)| labels[*j] == labels[i]).count();
    }
    agree as f64 / (n * k).max(1) as f64
}
