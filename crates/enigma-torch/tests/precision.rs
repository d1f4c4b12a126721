//! The autocast dtype (`enigma_torch::precision`, issue 19 item 7):
//! `precision: bf16` must autocast to bf16 on CUDA, not to CUDA's fp16
//! default, which is all `tch::autocast` gives.
//!
//! libtorch's autocast state is per thread and libtest runs each test on a
//! thread of its own, so the tests do not see each other's settings. The
//! dtype setter and getter only touch that state, so they run without a
//! GPU; the CUDA matmul at the end runs only where CUDA is available
//! (bench/gpu_precision.sh runs it on a GPU machine).

use enigma::ir::train::Precision;
use enigma_torch::precision::{
    autocast, autocast_dtype, autocast_enabled, autocast_kind, set_autocast_dtype, AutocastError,
};
use tch::{Device, Kind, Tensor};

const CUDA: Device = Device::Cuda(0);

#[test]
fn cuda_autocast_dtype_is_set_and_read_back() {
    // libtorch's default, which `precision: bf16` used to run in.
    assert_eq!(autocast_dtype(CUDA).unwrap(), Kind::Half);
    set_autocast_dtype(CUDA, Kind::BFloat16).unwrap();
    assert_eq!(autocast_dtype(CUDA).unwrap(), Kind::BFloat16);
    // One state for every CUDA device.
    assert_eq!(autocast_dtype(Device::Cuda(1)).unwrap(), Kind::BFloat16);
    set_autocast_dtype(CUDA, Kind::Half).unwrap();
    assert_eq!(autocast_dtype(CUDA).unwrap(), Kind::Half);
    // The CPU's state is its own.
    assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::BFloat16);
}

#[test]
fn cpu_autocast_dtype_is_set_and_read_back() {
    assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::BFloat16);
    set_autocast_dtype(Device::Cpu, Kind::Half).unwrap();
    assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::Half);
    assert_eq!(autocast_dtype(CUDA).unwrap(), Kind::Half);
    set_autocast_dtype(Device::Cpu, Kind::BFloat16).unwrap();
    assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::BFloat16);
}

#[test]
fn unsupported_kinds_and_devices_are_errors() {
    assert!(set_autocast_dtype(CUDA, Kind::Int64).is_err());
    assert!(set_autocast_dtype(Device::Mps, Kind::BFloat16).is_err());
    assert!(autocast_dtype(Device::Vulkan).is_err());
}

#[test]
fn the_autocast_dtype_is_per_thread() {
    // Why the backend sets it inside every forward rather than once.
    set_autocast_dtype(CUDA, Kind::BFloat16).unwrap();
    let other = std::thread::spawn(|| autocast_dtype(CUDA).unwrap())
        .join()
        .unwrap();
    assert_eq!(other, Kind::Half);
    assert_eq!(autocast_dtype(CUDA).unwrap(), Kind::BFloat16);
}

#[test]
fn the_backend_asks_for_the_precision_it_is_given() {
    // What `TorchBackend::new` stores and passes to `precision::autocast`.
    assert_eq!(autocast_kind(Precision::Bf16, CUDA), Some(Kind::BFloat16));
    assert_eq!(
        autocast_kind(Precision::Bf16, Device::Cuda(7)),
        Some(Kind::BFloat16)
    );
    assert_eq!(autocast_kind(Precision::F16, CUDA), Some(Kind::Half));
    assert_eq!(autocast_kind(Precision::F32, CUDA), None);
    // The CPU forward runs in f32 whatever the precision.
    for p in [Precision::F32, Precision::Bf16, Precision::F16] {
        assert_eq!(autocast_kind(p, Device::Cpu), None);
    }
}

fn matmul_kind(device: Device, kind: Option<Kind>) -> Kind {
    let a = Tensor::ones([4, 8], (Kind::Float, device));
    let b = Tensor::ones([8, 3], (Kind::Float, device));
    let mm = autocast(device, kind, || Ok::<_, AutocastError>(a.matmul(&b))).unwrap();
    assert_eq!(mm.size(), [4, 3]);
    mm.kind()
}

#[test]
fn cpu_autocast_matmul_runs_in_the_dtype_set() {
    assert_eq!(matmul_kind(Device::Cpu, None), Kind::Float);
    assert_eq!(
        matmul_kind(Device::Cpu, Some(Kind::BFloat16)),
        Kind::BFloat16
    );
    assert_eq!(matmul_kind(Device::Cpu, Some(Kind::Half)), Kind::Half);
    // Not the default: set Half, ask BFloat16 in the region.
    set_autocast_dtype(Device::Cpu, Kind::Half).unwrap();
    assert_eq!(
        matmul_kind(Device::Cpu, Some(Kind::BFloat16)),
        Kind::BFloat16
    );
    // The region restores what was there before it.
    assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::Half);
    assert!(!autocast_enabled(Device::Cpu).unwrap());
    assert_eq!(matmul_kind(Device::Cpu, None), Kind::Float);
}

#[test]
fn the_region_is_left_on_an_error_and_on_a_panic() {
    let r: Result<(), AutocastError> = autocast(Device::Cpu, Some(Kind::Half), || {
        assert!(autocast_enabled(Device::Cpu).unwrap());
        assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::Half);
        Err(AutocastError("the op failed".into()))
    });
    assert!(r.is_err());
    assert!(!autocast_enabled(Device::Cpu).unwrap());
    assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::BFloat16);

    let panicked = std::panic::catch_unwind(|| {
        let _: Result<(), AutocastError> =
            autocast(Device::Cpu, Some(Kind::Half), || panic!("in the forward"));
    });
    assert!(panicked.is_err());
    assert!(!autocast_enabled(Device::Cpu).unwrap());
    assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::BFloat16);
}

#[test]
fn nested_regions_restore_the_outer_dtype() {
    let inner = autocast(Device::Cpu, Some(Kind::BFloat16), || {
        let inner = autocast(Device::Cpu, Some(Kind::Half), || {
            Ok::<_, AutocastError>(autocast_dtype(Device::Cpu).unwrap())
        })?;
        assert_eq!(autocast_dtype(Device::Cpu).unwrap(), Kind::BFloat16);
        assert!(autocast_enabled(Device::Cpu).unwrap());
        Ok::<_, AutocastError>(inner)
    })
    .unwrap();
    assert_eq!(inner, Kind::Half);
    assert!(!autocast_enabled(Device::Cpu).unwrap());
}

#[test]
fn cuda_autocast_matmul_runs_in_the_dtype_set() {
    if !tch::Cuda::is_available() {
        // bench/gpu_precision.sh sets it, so that a skip there is a failure.
        assert!(
            std::env::var_os("ENIGMA_REQUIRE_CUDA").is_none(),
            "ENIGMA_REQUIRE_CUDA is set and CUDA is not available"
        );
        eprintln!("skipped: CUDA is not available (bench/gpu_precision.sh runs this on a GPU)");
        return;
    }
    assert_eq!(matmul_kind(CUDA, None), Kind::Float);
    let bf16 = autocast_kind(Precision::Bf16, CUDA);
    assert_eq!(matmul_kind(CUDA, bf16), Kind::BFloat16);
    let f16 = autocast_kind(Precision::F16, CUDA);
    assert_eq!(matmul_kind(CUDA, f16), Kind::Half);
    // What `tch::autocast` alone gives: CUDA's default, fp16.
    let a = Tensor::ones([4, 8], (Kind::Float, CUDA));
    assert_eq!(tch::autocast(true, || a.matmul(&a.tr())).kind(), Kind::Half);
}
