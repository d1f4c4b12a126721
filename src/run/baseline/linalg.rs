//! The one piece of linear algebra the baselines need: solving a small
//! symmetric positive-definite system (a ridge regression's normal
//! equations, at most a few hundred unknowns) by Cholesky factorisation,
//! factored once and solved for several right-hand sides.

/// The lower Cholesky factor `l` of a symmetric positive-definite `a`
/// (`n * n`, row-major), `a = l l^T`; `None` when `a` is not positive
/// definite (a ridge penalty above zero makes it so).
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    if a.len() != n * n {
        return None;
    }
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = a[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            if i == j {
                if s <= 0.0 || !s.is_finite() {
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

/// Solves `l l^T x = b` for a factor from [`cholesky`].
pub fn solve_factored(l: &[f64], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    // Forward substitution `l y = b`, then back substitution `l^T x = y`.
    let mut y = vec![0.0; n];
    for i in 0..n {
        let s: f64 = b[i] - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>();
        y[i] = s / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = y[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>();
        x[i] = s / l[i * n + i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::{cholesky, solve_factored};

    fn solve_spd(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
        Some(solve_factored(&cholesky(a, b.len())?, b))
    }

    #[test]
    fn solves_a_symmetric_positive_definite_system() {
        // a = m^T m + I for a fixed m, and b = a * [1, -2, 0.5].
        let a = [6.0, 2.0, 1.0, 2.0, 5.0, 2.0, 1.0, 2.0, 4.0];
        let want = [1.0, -2.0, 0.5];
        let b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| a[i * 3 + j] * want[j]).sum())
            .collect();
        let x = solve_spd(&a, &b).unwrap();
        for (g, w) in x.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{x:?}");
        }
    }

    #[test]
    fn a_matrix_that_is_not_positive_definite_has_no_solution() {
        assert!(solve_spd(&[1.0, 2.0, 2.0, 1.0], &[1.0, 1.0]).is_none());
        assert!(solve_spd(&[0.0], &[1.0]).is_none());
        assert!(solve_spd(&[1.0, 0.0], &[1.0]).is_none());
        assert_eq!(solve_spd(&[], &[]), Some(vec![]));
    }
}
