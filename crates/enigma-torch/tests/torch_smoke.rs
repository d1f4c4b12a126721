//! Proves that `enigma-torch` links libtorch and that it computes: a small
//! CPU matmul against hand-computed values, a backward pass against
//! hand-computed gradients, and that `libtorch_cuda.so` is really loaded when
//! the libtorch in use ships it (the `--as-needed` pitfall, see build.rs).

use tch::{Device, Kind, Tensor};

fn matrix(rows: &[[f64; 3]]) -> Tensor {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).reshape([rows.len() as i64, 3])
}

fn to_rows(t: &Tensor) -> Vec<Vec<f64>> {
    Vec::<Vec<f64>>::try_from(t).expect("a 2-d f64 tensor")
}

/// a (2x3) and b (3x2) as used by the tests below.
fn operands() -> (Tensor, Tensor) {
    let a = matrix(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let b = Tensor::from_slice(&[7.0f64, 8.0, 9.0, 10.0, 11.0, 12.0]).reshape([3, 2]);
    (a, b)
}

#[test]
fn matmul_matches_hand_computed_values() {
    let (a, b) = operands();
    let c = a.matmul(&b);
    assert_eq!(c.size(), vec![2, 2]);
    assert_eq!(c.kind(), Kind::Double);
    assert_eq!(c.device(), Device::Cpu);
    // [1 2 3; 4 5 6] @ [7 8; 9 10; 11 12]
    //   = [1*7+2*9+3*11  1*8+2*10+3*12; 4*7+5*9+6*11  4*8+5*10+6*12]
    assert_eq!(to_rows(&c), vec![vec![58.0, 64.0], vec![139.0, 154.0]]);
}

#[test]
fn backward_gives_hand_computed_gradients() {
    let (a, b) = operands();
    let a = a.set_requires_grad(true);
    let b = b.set_requires_grad(true);
    // loss = sum_ij (a @ b)_ij, so d loss / d a_ik = sum_j b_kj (row sums of b)
    // and d loss / d b_kj = sum_i a_ik (column sums of a).
    let loss = a.matmul(&b).sum(Kind::Double);
    assert_eq!(loss.double_value(&[]), 58.0 + 64.0 + 139.0 + 154.0);
    loss.backward();
    assert_eq!(
        to_rows(&a.grad()),
        vec![vec![15.0, 19.0, 23.0], vec![15.0, 19.0, 23.0]]
    );
    assert_eq!(
        to_rows(&b.grad()),
        vec![vec![5.0, 5.0], vec![7.0, 7.0], vec![9.0, 9.0]]
    );

    // A non-linear one: d/dx (x^3 + 2x) = 3x^2 + 2 = 14 at x = 2.
    let x = Tensor::scalar_tensor(2.0, (Kind::Double, Device::Cpu)).set_requires_grad(true);
    let y = x.pow_tensor_scalar(3) + &x * 2.0;
    assert_eq!(y.double_value(&[]), 12.0);
    y.backward();
    assert_eq!(x.grad().double_value(&[]), 14.0);
}

/// The libtorch lib dir torch-sys linked against, as passed on by build.rs.
const LIBTORCH_LIB: &str = env!("ENIGMA_LIBTORCH_LIB");

#[test]
fn torch_cuda_is_loaded_when_libtorch_ships_it() {
    let shipped = std::path::Path::new(LIBTORCH_LIB)
        .join("libtorch_cuda.so")
        .exists();
    let maps = std::fs::read_to_string("/proc/self/maps").expect("Linux /proc/self/maps");
    let loaded = maps.contains("/libtorch_cuda.so");
    assert!(
        maps.contains("/libtorch_cpu.so"),
        "libtorch_cpu.so is not mapped into the test binary"
    );
    // A CUDA libtorch that is shipped but not loaded means --as-needed dropped
    // it and CUDA would silently be unavailable.
    assert_eq!(
        loaded, shipped,
        "libtorch_cuda.so shipped in {LIBTORCH_LIB}: {shipped}, loaded: {loaded}"
    );
}

/// Runs only where asked for (`cargo test --test torch_smoke -- --ignored`
/// on a GPU machine): on a CPU-only machine it could not test anything, and
/// a test that passes without testing would hide a broken CUDA path.
#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on a GPU machine"]
fn matmul_on_cuda() {
    assert!(
        tch::Cuda::is_available(),
        "no CUDA device is visible to libtorch"
    );
    let (a, b) = operands();
    let c = a
        .to_device(Device::Cuda(0))
        .matmul(&b.to_device(Device::Cuda(0)));
    assert_eq!(c.device(), Device::Cuda(0));
    assert_eq!(
        to_rows(&c.to_device(Device::Cpu)),
        vec![vec![58.0, 64.0], vec![139.0, 154.0]]
    );
}
