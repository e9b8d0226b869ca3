//! The little dense linear algebra the fitting needs (small matrices, f64): a symmetric
//! positive-definite solve (its Cholesky factor kept for repeated solves) and a symmetric
//! eigendecomposition.

/// Solves `a x = b` for symmetric positive-definite `a` (n x n, row-major) and `b` (n x m);
/// returns None when `a` is not positive definite.
pub fn solve_spd(a: &[f64], n: usize, b: &[f64], m: usize) -> Option<Vec<f64>> {
    cholesky(a, n).map(|l| cholesky_solve(&l, n, b, m))
}

/// The lower-triangular L with L L^T = `a` (n x n, row-major, symmetric positive-definite),
/// or None when `a` is not positive definite. Kept by callers that solve with one matrix
/// many times ([`cholesky_solve`]).
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = a[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves L L^T x = `b` (n x m) for the factor `l` of [`cholesky`].
pub fn cholesky_solve(l: &[f64], n: usize, b: &[f64], m: usize) -> Vec<f64> {
    let mut x = b.to_vec();
    for c in 0..m {
        for i in 0..n {
            let s: f64 = x[i * m + c] - (0..i).map(|k| l[i * n + k] * x[k * m + c]).sum::<f64>();
            x[i * m + c] = s / l[i * n + i];
        }
        for i in (0..n).rev() {
            let s: f64 = x[i * m + c] - (i + 1..n).map(|k| l[k * n + i] * x[k * m + c]).sum::<f64>();
            x[i * m + c] = s / l[i * n + i];
        }
    }
    x
}

/// Eigenvalues (descending) and eigenvectors (columns of the returned n x n row-major
/// matrix) of a symmetric matrix, by cyclic Jacobi rotations: fine for n up to a few hundred.
pub fn eigh(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * n + j].powi(2)).sum();
        let scale: f64 = (0..n).map(|i| a[i * n + i].powi(2)).sum::<f64>().max(1e-300);
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let mut vectors = vec![0.0; n * n];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..n {
            vectors[k * n + new] = v[k * n + old];
        }
    }
    (values, vectors)
}

/// The `k` leading eigenpairs of a symmetric positive semi-definite n x n matrix by subspace
/// iteration followed by a Rayleigh-Ritz step; vectors are returned as k rows of length n.
pub fn top_eigen(g: &[f64], n: usize, k: usize, seed: u64) -> (Vec<f64>, Vec<Vec<f64>>) {
    let p = (k + 8).min(n);
    let mut rng = crate::util::rng::Rng::new(seed);
    let mut q: Vec<Vec<f64>> = (0..p).map(|_| (0..n).map(|_| f64::from(rng.normal())).collect()).collect();
    orthonormalise(&mut q);
    let mul = |q: &[Vec<f64>]| -> Vec<Vec<f64>> { q.iter().map(|v| (0..n).map(|i| g[i * n..(i + 1) * n].iter().zip(v).map(|(a, b)| a * b).sum()).collect()).collect() };
    for _ in 0..40 {
        q = mul(&q);
        orthonormalise(&mut q);
    }
    let gq = mul(&q);
    let h: Vec<f64> = (0..p * p).map(|ij| q[ij / p].iter().zip(&gq[ij % p]).map(|(a, b)| a * b).sum()).collect();
    let (vals, vecs) = eigh(&h, p);
    let rows = (0..k.min(p))
        .map(|c| (0..n).map(|i| (0..p).map(|j| vecs[j * p + c] * q[j][i]).sum()).collect())
        .collect();
    (vals[..k.min(p)].to_vec(), rows)
}

fn orthonormalise(q: &mut [Vec<f64>]) {
    for i in 0..q.len() {
        for j in 0..i {
            let d: f64 = q[i].iter().zip(&q[j]).map(|(a, b)| a * b).sum();
            let qj = q[j].clone();
            q[i].iter_mut().zip(&qj).for_each(|(a, b)| *a -= d * b);
        }
        let norm = q[i].iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-300);
        q[i].iter_mut().for_each(|a| *a /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spd_solve_and_eigen() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let x = solve_spd(&a, 3, &[1.0, 2.0, 3.0], 1).unwrap();
        for i in 0..3 {
            let r: f64 = (0..3).map(|j| a[i * 3 + j] * x[j]).sum();
            assert!((r - [1.0, 2.0, 3.0][i]).abs() < 1e-12);
        }
        assert!(solve_spd(&[1.0, 2.0, 2.0, 1.0], 2, &[1.0, 1.0], 1).is_none());
        let (vals, vecs) = eigh(&a, 3);
        for c in 0..3 {
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i * 3 + j] * vecs[j * 3 + c]).sum();
                assert!((av - vals[c] * vecs[i * 3 + c]).abs() < 1e-10);
            }
        }
        let (top, rows) = top_eigen(&a, 3, 1, 1);
        assert!((top[0] - vals[0]).abs() < 1e-9);
        assert!((rows[0].iter().zip(0..3).map(|(r, i)| r * vecs[i * 3]).sum::<f64>().abs() - 1.0).abs() < 1e-9);
    }
}
