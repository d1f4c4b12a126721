//! Finding and loading the `libnccl.so.2` that libtorch loads, without
//! letting cudarc panic (see the parent module on what was measured).

use std::ffi::{c_char, c_int, c_void, CStr, OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;

use cudarc::nccl::result::{self as nccl};
use cudarc::nccl::sys as nccl_sys;

use super::super::CommError;
use super::*;

// Loading.

/// What [`load`] found: the library and how this process reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NcclLibrary {
    /// The `libnccl.so.2` in use, canonical.
    pub path: PathBuf,
    /// The private directory holding the `libnccl.so` symlink to it.
    pub shim_dir: PathBuf,
    /// The version the loaded library reports.
    pub version: NcclVersion,
}

/// An NCCL version, as `ncclGetVersion` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NcclVersion {
    /// The raw code, e.g. 22809 for 2.28.9.
    pub code: i32,
    /// The major version (2).
    pub major: i32,
    /// The minor version (28 in 2.28.9).
    pub minor: i32,
    /// The patch level (9 in 2.28.9).
    pub patch: i32,
}

impl NcclVersion {
    /// Splits a version code; NCCL 2.9 and later encode
    /// `major * 10000 + minor * 100 + patch`, older ones used 1000 for the
    /// major version.
    pub fn from_code(code: i32) -> NcclVersion {
        let (major, rest) = if code >= 10000 {
            (code / 10000, code % 10000)
        } else {
            (code / 1000, code % 1000)
        };
        NcclVersion {
            code,
            major,
            minor: rest / 100,
            patch: rest % 100,
        }
    }
}

impl fmt::Display for NcclVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The `libnccl.so.2` to use: the one `ENIGMA_NCCL_LIB` names, else the
/// one the PyTorch wheel installs beside libtorch
/// (`<libtorch_lib>/../../nvidia/nccl/lib/libnccl.so.2`).
pub fn locate(libtorch_lib: &Path) -> Result<PathBuf, CommError> {
    locate_with(std::env::var_os(NCCL_LIB_ENV).as_deref(), libtorch_lib)
}

/// [`locate`] with the override passed in rather than read from the
/// environment (tests use this to avoid racing on the variable).
pub fn locate_with(
    override_path: Option<&OsStr>,
    libtorch_lib: &Path,
) -> Result<PathBuf, CommError> {
    let (candidate, origin) = match override_path.filter(|p| !p.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            let file = if p.is_dir() {
                p.join(NCCL_FILE)
            } else {
                p.clone()
            };
            (file, format!("from {NCCL_LIB_ENV}={}", p.display()))
        }
        None => (
            libtorch_lib.join("../../nvidia/nccl/lib").join(NCCL_FILE),
            format!("next to libtorch at {}", libtorch_lib.display()),
        ),
    };
    let hint = format!(
        "install the PyTorch wheel's NCCL (pip package nvidia-nccl-cu13) or set {NCCL_LIB_ENV} \
         to a libnccl.so.2 or the directory holding it"
    );
    match std::fs::canonicalize(&candidate) {
        Ok(path) if path.is_file() => Ok(path),
        Ok(path) => Err(CommError::new(format!(
            "NCCL library {} ({origin}) is not a file; {hint}",
            path.display()
        ))),
        Err(e) => Err(CommError::new(format!(
            "NCCL library {} ({origin}) cannot be used: {e}; {hint}",
            candidate.display()
        ))),
    }
}

/// Makes (or reuses) the private directory holding a `libnccl.so` symlink
/// to `nccl_lib`, under `$XDG_RUNTIME_DIR` when set, else the temporary
/// directory; returns the directory.
pub fn shim_dir(nccl_lib: &Path) -> Result<PathBuf, CommError> {
    let base = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() && dir.is_dir() => dir,
        _ => std::env::temp_dir(),
    };
    shim_dir_in(&base, nccl_lib)
}

/// [`shim_dir`] under a given base directory.
///
/// The directory is named after the user and the library, so that the
/// ranks of a job on one machine (and later jobs) share it instead of
/// littering the base with one per process. Because the base may be a
/// shared `/tmp`, a directory that exists already is used only if it is a
/// real directory owned by this user and closed to everyone else; the
/// symlink is made under a per-process name and renamed into place, which
/// is atomic, so ranks creating it at the same time do not trip over each
/// other.
pub fn shim_dir_in(base: &Path, nccl_lib: &Path) -> Result<PathBuf, CommError> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { getuid() };
    let dir = base.join(format!(
        "enigma-nccl-{uid}-{:016x}",
        fnv1a(nccl_lib.as_os_str().as_bytes())
    ));
    let fail = |what: &str, e: &dyn fmt::Display| {
        CommError::new(format!(
            "cannot prepare the NCCL link directory {}: {what}: {e}",
            dir.display()
        ))
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail("creating it", &e)),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| fail("inspecting it", &e))?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(fail(
            "refusing to use it",
            &format!(
                "it must be a directory owned by uid {uid} with mode 0700 (found uid {}, mode {:o}); remove it",
                meta.uid(),
                meta.permissions().mode() & 0o7777
            ),
        ));
    }
    let link = dir.join(CUDARC_NAME);
    if std::fs::read_link(&link).ok().as_deref() == Some(nccl_lib) {
        return Ok(dir);
    }
    let tmp = dir.join(format!(".{CUDARC_NAME}.{}", std::process::id()));
    // A leftover from a crashed earlier process with the same pid is the
    // only thing that can be in the way; its absence is the normal case.
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(nccl_lib, &tmp).map_err(|e| fail("making the symlink", &e))?;
    std::fs::rename(&tmp, &link).map_err(|e| fail("renaming the symlink into place", &e))?;
    Ok(dir)
}

/// `LD_LIBRARY_PATH` with `dir` put first: the value a process must start
/// with for cudarc to load NCCL through the symlink in `dir`.
pub fn library_path_with(dir: &Path, current: Option<&OsStr>) -> OsString {
    let mut out = OsString::from(dir.as_os_str());
    if let Some(cur) = current.filter(|c| !c.is_empty()) {
        out.push(":");
        out.push(cur);
    }
    out
}

/// Whether cudarc can load NCCL in this process (its own probe, which
/// `dlopen`s and closes the candidates; it does not panic).
pub fn nccl_present() -> Result<bool, CommError> {
    guarded("probing for NCCL", || {
        // SAFETY: the probe only dlopens and dlcloses cudarc's candidate
        // names.
        Ok(unsafe { nccl_sys::is_culib_present() })
    })
}

/// Whether cudarc can load the CUDA driver library (libcuda) in this
/// process.
pub fn cuda_present() -> Result<bool, CommError> {
    guarded("probing for the CUDA driver", || {
        // SAFETY: as for `nccl_present`.
        Ok(unsafe { cudarc::driver::sys::is_culib_present() })
    })
}

/// The version of the NCCL cudarc loads. Fails with a [`CommError`] (never
/// a panic) when it cannot load one.
pub fn version() -> Result<NcclVersion, CommError> {
    require_nccl("ncclGetVersion")?;
    let code = guarded("ncclGetVersion", || {
        nccl::get_nccl_version()
            .map_err(|e| nccl_error("ncclGetVersion", "the library", e, std::ptr::null_mut()))
    })?;
    Ok(NcclVersion::from_code(code))
}

/// Finds NCCL ([`locate`]), makes its symlink directory ([`shim_dir`]) and
/// checks that cudarc loads exactly that library in this process.
///
/// Fails when cudarc cannot load NCCL, naming the directory to put on
/// `LD_LIBRARY_PATH` at process start (see the module documentation and
/// [`reexec_if_needed`]), and when it loads a different `libnccl` than the
/// one located (e.g. a system copy found first on `LD_LIBRARY_PATH`).
pub fn load(libtorch_lib: &Path) -> Result<NcclLibrary, CommError> {
    load_with(std::env::var_os(NCCL_LIB_ENV).as_deref(), libtorch_lib)
}

/// [`load`] with the `ENIGMA_NCCL_LIB` override passed in.
pub fn load_with(
    override_path: Option<&OsStr>,
    libtorch_lib: &Path,
) -> Result<NcclLibrary, CommError> {
    let path = locate_with(override_path, libtorch_lib)?;
    let shim = shim_dir(&path)?;
    if !nccl_present()? {
        return Err(CommError::new(format!(
            "found NCCL at {} but this process cannot load it: cudarc only tries names such as \
             libnccl.so, never libnccl.so.2, and the dynamic loader reads LD_LIBRARY_PATH only \
             when a process starts; {} now holds a libnccl.so link to it, so start the process \
             with LD_LIBRARY_PATH={} (nccl::reexec_if_needed does so by re-executing the program)",
            path.display(),
            shim.display(),
            library_path_with(&shim, std::env::var_os("LD_LIBRARY_PATH").as_deref())
                .to_string_lossy()
        )));
    }
    if let Some(loaded) = loaded_file()? {
        if !same_file(&loaded, &path) {
            return Err(CommError::new(format!(
                "cudarc loaded NCCL from {}, not the expected {}; put {} first on LD_LIBRARY_PATH, \
                 or set {NCCL_LIB_ENV}={} to use that copy",
                loaded.display(),
                path.display(),
                shim.display(),
                loaded.display()
            )));
        }
    }
    let version = version()?;
    Ok(NcclLibrary {
        path,
        shim_dir: shim,
        version,
    })
}

/// Makes NCCL loadable by re-executing the running program with the
/// symlink directory first on `LD_LIBRARY_PATH`, when cudarc cannot load
/// the located library already (it loads none, or another copy). Returns
/// `Ok` when nothing needs doing; otherwise it does not return unless
/// something fails.
///
/// Call it first thing in `main`: the process image is replaced (same pid,
/// arguments and environment plus `LD_LIBRARY_PATH` and
/// [`REEXEC_MARK_ENV`]), so nothing done before survives, and MPI must not
/// have been initialised yet.
pub fn reexec_if_needed(libtorch_lib: &Path) -> Result<(), CommError> {
    let present = nccl_present()?;
    let path = match locate(libtorch_lib) {
        Ok(path) => path,
        // Some NCCL loads, just not one enigma can vouch for: leave it to
        // `load` to judge (and explain).
        Err(_) if present => return Ok(()),
        Err(e) => return Err(e),
    };
    if present && loaded_file()?.is_none_or(|loaded| same_file(&loaded, &path)) {
        return Ok(());
    }
    let shim = shim_dir(&path)?;
    let library_path = library_path_with(&shim, std::env::var_os("LD_LIBRARY_PATH").as_deref());
    if let Some(mark) = std::env::var_os(REEXEC_MARK_ENV) {
        return Err(CommError::new(format!(
            "cudarc still does not load NCCL from {} after re-executing with {} on \
             LD_LIBRARY_PATH (now {})",
            path.display(),
            Path::new(&mark).display(),
            std::env::var_os("LD_LIBRARY_PATH")
                .unwrap_or_default()
                .to_string_lossy()
        )));
    }
    let exe = std::env::current_exe().map_err(|e| {
        CommError::new(format!(
            "cannot find the running executable to re-execute it: {e}"
        ))
    })?;
    let mut args = std::env::args_os();
    let mut cmd = Command::new(&exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    cmd.args(args)
        .env("LD_LIBRARY_PATH", &library_path)
        .env(REEXEC_MARK_ENV, &shim);
    let err = cmd.exec();
    Err(CommError::new(format!(
        "re-executing {} with LD_LIBRARY_PATH={} failed: {err}",
        exe.display(),
        library_path.to_string_lossy()
    )))
}

/// The file cudarc loaded NCCL from (canonical), found with `dladdr` on one
/// of its functions; `None` when the loader cannot say.
pub(super) fn loaded_file() -> Result<Option<PathBuf>, CommError> {
    require_nccl("locating the loaded NCCL")?;
    guarded("locating the loaded NCCL", || {
        // SAFETY: NCCL is present (checked above), so cudarc's loader
        // returns its library; the symbol is only used as an address.
        let addr = unsafe {
            match nccl_sys::culib().get::<unsafe extern "C" fn()>(&b"ncclGetVersion\0"[..]) {
                Ok(sym) => *sym as *const c_void,
                Err(_) => return Ok(None),
            }
        };
        let mut info = DlInfo {
            dli_fname: std::ptr::null(),
            dli_fbase: std::ptr::null_mut(),
            dli_sname: std::ptr::null(),
            dli_saddr: std::ptr::null_mut(),
        };
        // SAFETY: `info` is a valid out-parameter; dladdr only reads `addr`
        // as an address.
        if unsafe { dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
            return Ok(None);
        }
        // SAFETY: dladdr returned a NUL-terminated name owned by the loader.
        let name = unsafe { CStr::from_ptr(info.dli_fname) };
        let name = PathBuf::from(OsStr::from_bytes(name.to_bytes()));
        Ok(std::fs::canonicalize(&name).ok())
    })
}

/// Whether two paths name the same file, as the dynamic loader judges it
/// (device and inode, so hard links and symlinks count as the same).
pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => a == b,
    }
}

/// Fails unless cudarc can load NCCL, with a message saying how to fix it.
pub(super) fn require_nccl(op: &str) -> Result<(), CommError> {
    if nccl_present()? {
        Ok(())
    } else {
        Err(CommError::new(format!(
            "{op}: NCCL cannot be loaded in this process (cudarc found no libnccl.so on the \
             library path); start the process with the directory from nccl::load on \
             LD_LIBRARY_PATH, which nccl::reexec_if_needed arranges by re-executing the program"
        )))
    }
}

/// Fails unless cudarc can load the CUDA driver library.
pub(super) fn require_cuda(op: &str) -> Result<(), CommError> {
    if cuda_present()? {
        Ok(())
    } else {
        Err(CommError::new(format!(
            "{op}: the CUDA driver library (libcuda.so.1) cannot be loaded: this machine has no \
             NVIDIA driver; NCCL needs a GPU"
        )))
    }
}

/// Runs `f`, turning a panic (cudarc panics on a missing library or symbol)
/// into a [`CommError`] for `what`.
pub(super) fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, CommError>,
) -> Result<T, CommError> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Err(CommError::new(format!(
                "{what}: the CUDA/NCCL binding failed: {msg}"
            )))
        }
    }
}

/// 64-bit FNV-1a: a stable hash for the symlink directory's name, the same
/// in every process and every build (std's hasher promises neither).
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// glibc's `Dl_info`, which `dladdr` fills in.
#[repr(C)]
pub(super) struct DlInfo {
    /// The path of the object holding the address, as it was loaded.
    dli_fname: *const c_char,
    /// Where that object is mapped.
    dli_fbase: *mut c_void,
    /// The nearest symbol and its address (unused).
    dli_sname: *const c_char,
    dli_saddr: *mut c_void,
}

// Two C library functions, declared here rather than through the `libc`
// crate to keep enigma-torch's dependencies as they are; glibc (2.34 and
// later) has both in libc.so.6, which every Rust program links.
extern "C" {
    fn dladdr(addr: *const c_void, info: *mut DlInfo) -> c_int;
    fn getuid() -> u32;
}
