//! The compute precision of the forward pass: autocast, with its dtype set
//! explicitly.
//!
//! `tch::autocast` (tch 0.24) only switches CUDA autocast on and off; it
//! never chooses the dtype autocast casts to, and libtorch's default for
//! CUDA is fp16. So `precision: bf16` on CUDA would run in fp16. The C++ shim
//! `csrc/precision.cpp` (compiled by build.rs) reaches
//! `at::autocast::{set,get}_autocast_dtype` and `set_autocast_enabled` per
//! device type, and [`autocast`] uses it to run a closure with autocast on
//! for one device type in one dtype, restoring the previous state after.
//!
//! libtorch keeps this state per thread (the enabled flags in the thread's
//! dispatch key set, the dtypes in a `thread_local` array), so [`autocast`]
//! sets it on the thread that runs the closure, every time.
//!
//! With `ENIGMA_LOG_AUTOCAST` set in the environment, the first autocast
//! region of the process prints to stderr the dtype libtorch reports and the
//! kind an f32 matmul gives inside it (bench/gpu_precision.sh reads it).

use std::fmt;
use std::os::raw::c_int;
use std::sync::Once;

use tch::{Device, Kind, Tensor};

use enigma::ir::train::Precision;

use crate::OpError;

extern "C" {
    fn enigma_autocast_set_dtype(device_type: c_int, scalar_type: c_int) -> c_int;
    fn enigma_autocast_get_dtype(device_type: c_int) -> c_int;
    fn enigma_autocast_set_enabled(device_type: c_int, enabled: c_int) -> c_int;
    fn enigma_autocast_is_enabled(device_type: c_int) -> c_int;
    fn enigma_autocast_increment_nesting() -> c_int;
    fn enigma_autocast_decrement_nesting() -> c_int;
}

/// The environment variable that makes the first autocast region log.
pub const LOG_ENV: &str = "ENIGMA_LOG_AUTOCAST";

/// Autocast state that could not be read or set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutocastError(pub String);

impl fmt::Display for AutocastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "autocast: {}", self.0)
    }
}

impl std::error::Error for AutocastError {}

impl From<AutocastError> for OpError {
    fn from(e: AutocastError) -> OpError {
        OpError::new(e.to_string())
    }
}

/// The dtype the forward's matrix products run in under `precision` on
/// `device`, or `None` when the forward runs without autocast: `f32`, and
/// every precision on the CPU (the backend runs CPU forwards in f32).
pub fn autocast_kind(precision: Precision, device: Device) -> Option<Kind> {
    match (precision, device) {
        (Precision::F32, _) => None,
        (Precision::Bf16, Device::Cuda(_)) => Some(Kind::BFloat16),
        (Precision::F16, Device::Cuda(_)) => Some(Kind::Half),
        (_, _) => None,
    }
}

/// `c10::DeviceType` of a device (the shim checks these values).
fn device_type(device: Device) -> Result<c_int, AutocastError> {
    match device {
        Device::Cpu => Ok(0),
        Device::Cuda(_) => Ok(1),
        other => Err(AutocastError(format!(
            "no autocast on {other:?} (only the CPU and CUDA)"
        ))),
    }
}

/// `c10::ScalarType` of the kinds autocast may cast to.
fn scalar_type(kind: Kind) -> Result<c_int, AutocastError> {
    match kind {
        Kind::Half => Ok(5),
        Kind::Float => Ok(6),
        Kind::Double => Ok(7),
        Kind::BFloat16 => Ok(15),
        other => Err(AutocastError(format!(
            "autocast cannot cast to {other:?} (only Half, BFloat16, Float, Double)"
        ))),
    }
}

fn kind_of(scalar_type: c_int) -> Result<Kind, AutocastError> {
    match scalar_type {
        5 => Ok(Kind::Half),
        6 => Ok(Kind::Float),
        7 => Ok(Kind::Double),
        15 => Ok(Kind::BFloat16),
        other => Err(AutocastError(format!(
            "libtorch reports autocast dtype {other}, which is not a floating kind enigma uses"
        ))),
    }
}

fn check(rc: c_int, what: &str) -> Result<c_int, AutocastError> {
    if rc < 0 {
        Err(AutocastError(format!("libtorch failed to {what}")))
    } else {
        Ok(rc)
    }
}

/// Sets the dtype autocast casts to on `device`'s device type (all CUDA
/// devices share one), on this thread.
pub fn set_autocast_dtype(device: Device, kind: Kind) -> Result<(), AutocastError> {
    let (d, k) = (device_type(device)?, scalar_type(kind)?);
    // SAFETY: plain integers; the shim checks them and catches exceptions.
    check(
        unsafe { enigma_autocast_set_dtype(d, k) },
        "set the autocast dtype",
    )?;
    Ok(())
}

/// The dtype autocast casts to on `device`'s device type, on this thread.
pub fn autocast_dtype(device: Device) -> Result<Kind, AutocastError> {
    let d = device_type(device)?;
    // SAFETY: as above.
    kind_of(check(
        unsafe { enigma_autocast_get_dtype(d) },
        "read the autocast dtype",
    )?)
}

/// Switches autocast on `device`'s device type on or off, on this thread.
pub fn set_autocast_enabled(device: Device, enabled: bool) -> Result<(), AutocastError> {
    let d = device_type(device)?;
    // SAFETY: as above.
    check(
        unsafe { enigma_autocast_set_enabled(d, c_int::from(enabled)) },
        "switch autocast",
    )?;
    Ok(())
}

/// Whether autocast on `device`'s device type is on, on this thread.
pub fn autocast_enabled(device: Device) -> Result<bool, AutocastError> {
    let d = device_type(device)?;
    // SAFETY: as above.
    Ok(check(
        unsafe { enigma_autocast_is_enabled(d) },
        "read whether autocast is on",
    )? == 1)
}

/// Runs `f` with autocast on for `device`'s device type, casting to `kind`
/// (`None`: runs `f` as it is), and restores the previous state after, also
/// when `f` panics. Unlike `tch::autocast`, this sets the dtype, and works
/// for the CPU as for CUDA.
pub fn autocast<T, E, F>(device: Device, kind: Option<Kind>, f: F) -> Result<T, E>
where
    E: From<AutocastError>,
    F: FnOnce() -> Result<T, E>,
{
    let Some(kind) = kind else {
        return f();
    };
    let region = Region::enter(device, kind)?;
    log_once(device, kind);
    let out = f();
    region.leave()?;
    out
}

/// An autocast region entered on this thread, with the state to restore.
struct Region {
    device: Device,
    enabled: bool,
    dtype: Kind,
    nested: bool,
    left: bool,
}

impl Region {
    fn enter(device: Device, kind: Kind) -> Result<Region, AutocastError> {
        let mut region = Region {
            device,
            enabled: autocast_enabled(device)?,
            dtype: autocast_dtype(device)?,
            nested: false,
            left: false,
        };
        // From here on, dropping `region` on an error undoes what was done.
        set_autocast_dtype(device, kind)?;
        set_autocast_enabled(device, true)?;
        // SAFETY: no arguments; the shim catches exceptions.
        check(
            unsafe { enigma_autocast_increment_nesting() },
            "enter an autocast region",
        )?;
        region.nested = true;
        Ok(region)
    }

    fn restore(&mut self) -> Result<(), AutocastError> {
        self.left = true;
        let mut result = Ok(());
        if self.nested {
            // SAFETY: as above; this also drops the cache of cast weights
            // when the outermost region ends.
            let rc = unsafe { enigma_autocast_decrement_nesting() };
            result = check(rc, "leave an autocast region").map(|_| ());
        }
        let enabled = set_autocast_enabled(self.device, self.enabled);
        let dtype = set_autocast_dtype(self.device, self.dtype);
        result.and(enabled).and(dtype)
    }

    fn leave(mut self) -> Result<(), AutocastError> {
        self.restore()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if !self.left {
            // On a panic or an error while entering; nothing to report to.
            let _ = self.restore();
        }
    }
}

/// With [`LOG_ENV`] set, prints once per process what autocast does inside
/// the current region.
fn log_once(device: Device, kind: Kind) {
    static LOGGED: Once = Once::new();
    if std::env::var_os(LOG_ENV).is_none() {
        return;
    }
    LOGGED.call_once(|| {
        let dtype = autocast_dtype(device).map_or_else(|e| e.to_string(), |k| format!("{k:?}"));
        let probe = Tensor::f_ones([2, 2], (Kind::Float, device))
            .and_then(|a| a.f_matmul(&a))
            .map_or_else(|e| format!("failed: {e}"), |t| format!("{:?}", t.kind()));
        eprintln!(
            "enigma: autocast on {device:?}: asked {kind:?}, libtorch's dtype {dtype}, \
             an f32 matmul gives {probe}"
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_types_round_trip() {
        for kind in [Kind::Half, Kind::Float, Kind::Double, Kind::BFloat16] {
            assert_eq!(kind_of(scalar_type(kind).unwrap()).unwrap(), kind);
        }
        assert!(scalar_type(Kind::Int64).is_err());
        assert!(kind_of(4).is_err());
    }

    #[test]
    fn only_cpu_and_cuda_have_a_device_type() {
        assert_eq!(device_type(Device::Cpu), Ok(0));
        assert_eq!(device_type(Device::Cuda(3)), Ok(1));
        assert!(device_type(Device::Mps).is_err());
    }
}
