//! Build script for `enigma-torch`, the one package that links libtorch
//! (through `tch`/`torch-sys`); the front end (`enigma`) has no build script
//! and builds with no libtorch anywhere on the machine.
//!
//! Why it exists (see docs/setup.md, "Linking libtorch"):
//! - rustc links with `-Wl,--as-needed`, and nothing in our object files calls
//!   into `libtorch_cuda.so` directly (CUDA kernels are reached through the
//!   dispatcher, which `libtorch_cuda.so` fills in from its static
//!   initialisers). The linker therefore drops it from DT_NEEDED, it is never
//!   loaded, and `tch::Cuda::is_available()` is silently `false` even on a GPU
//!   machine. We force it back in with `--no-as-needed`.
//! - torch-sys puts its rpath only on its own C++ shim, not on our binaries,
//!   so without an rpath the binary and test executables cannot find
//!   `libtorch*.so` unless LD_LIBRARY_PATH is set. We add one.
//! - tch 0.24 cannot choose the dtype autocast casts to (its `autocast` only
//!   switches CUDA autocast on and off, and CUDA's default is fp16), so
//!   `precision: bf16` would run in fp16. `csrc/precision.cpp` is a small C++
//!   shim over `at::autocast::{set,get}_autocast_dtype`, compiled here against
//!   the headers of the libtorch torch-sys links (src/precision.rs).

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    // Declaring any rerun-if line stops Cargo from rerunning this script on
    // every change to any file in the package; only this file matters here.
    println!("cargo:rerun-if-changed=build.rs");
    // torch-sys publishes the lib dir under its `links = "tch"` key, so Cargo
    // hands it to us (a direct dependent) as DEP_TCH_LIBTORCH_LIB. Rerun when
    // it changes, e.g. after switching to another libtorch or PyTorch.
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");

    compile_precision_shim();

    // torch-sys 0.24.0 prints `cargo:libtorch_lib=<dir>`; Cargo renames that
    // to DEP_<links>_LIBTORCH_LIB with links = "tch". (torch-sys's own comment
    // says DEP_TORCH_SYS_LIBTORCH_LIB, which is not what Cargo exports.)
    let lib_dir = match env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(dir) => dir,
        Err(_) => {
            // Only reachable if torch-sys stops exporting the key: warn loudly
            // rather than fail, since tch's own link line still works with
            // LD_LIBRARY_PATH (but then CUDA may be dropped, hence the warning).
            println!(
                "cargo:warning=DEP_TCH_LIBTORCH_LIB is not set by torch-sys; \
                 no rpath and no forced libtorch_cuda link were added"
            );
            return;
        }
    };
    let lib = Path::new(&lib_dir);

    // Search path for the -l flags below. torch-sys already propagates the
    // same directory, repeating it keeps this script self-contained.
    println!("cargo:rustc-link-search=native={lib_dir}");

    // rpath (RUNPATH with Debian's linker defaults) to the libtorch lib dir,
    // for every binary, test, example and bench of this package, so they run
    // without LD_LIBRARY_PATH. LD_LIBRARY_PATH can still override it.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");

    // Tell our own code (and tests/torch_smoke.rs) which libtorch it was
    // linked against: `env!("ENIGMA_LIBTORCH_LIB")`. DEP_* variables exist
    // only while build scripts run, so this is the one way to pass it on.
    println!("cargo:rustc-env=ENIGMA_LIBTORCH_LIB={lib_dir}");

    // Keep the torch CUDA libraries in DT_NEEDED despite --as-needed (see the
    // module comment). Only when the libtorch in use ships them: a CPU-only
    // libtorch has neither file and needs nothing extra.
    for name in ["torch_cuda", "c10_cuda"] {
        if lib.join(format!("lib{name}.so")).exists() {
            // --no-as-needed applies to the -l that follows it; switching
            // --as-needed back on keeps the default for later libraries.
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-l{name}");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}

/// Compiles `csrc/precision.cpp` into a static library linked into this
/// package (the same way torch-sys compiles its own shim, `libtch`): C++17,
/// libtorch's include dirs, and the libstdc++ ABI libtorch was built with.
/// Fails the build, naming what is missing, when the headers are not found.
fn compile_precision_shim() {
    println!("cargo:rerun-if-changed=csrc/precision.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_INCLUDE");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let include = libtorch_include();
    let header = include.join("ATen/autocast_mode.h");
    if !header.is_file() {
        panic!(
            "enigma-torch: cannot find libtorch's C++ header {} (needed to compile \
             csrc/precision.cpp, which sets the autocast dtype). The include dir \
             was {}; set LIBTORCH_INCLUDE to the libtorch root (the directory \
             holding include/) or use a libtorch that ships its headers (the \
             PyTorch wheel and the libtorch zip both do)",
            header.display(),
            how_found(&include),
        );
    }
    // torch-sys reads the ABI from PyTorch (LIBTORCH_USE_PYTORCH) or from
    // LIBTORCH_CXX11_ABI, default 1; PyTorch wheels are built with the new
    // ABI only since 2.7. The shim passes no std::string across, so a
    // mismatch could not break its link anyway, but keep the headers' layout
    // the library's.
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/precision.cpp")
        .compile("enigma_precision");
}

/// libtorch's `include` dir: `$LIBTORCH_INCLUDE/include` when set (the
/// variable torch-sys reads for a separate header tree), else next to the
/// lib dir torch-sys links (`<lib>/../include`, the layout of both the
/// PyTorch wheel, `torch/{lib,include}`, and the libtorch zip).
fn libtorch_include() -> PathBuf {
    if let Ok(root) = env::var("LIBTORCH_INCLUDE") {
        return Path::new(&root).join("include");
    }
    match env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(lib) => Path::new(&lib).join("../include"),
        Err(_) => panic!(
            "enigma-torch: cannot find libtorch's C++ headers, needed to compile \
             csrc/precision.cpp: torch-sys did not export its lib dir \
             (DEP_TCH_LIBTORCH_LIB) and LIBTORCH_INCLUDE is not set; set \
             LIBTORCH_INCLUDE to the libtorch root (the directory holding include/)"
        ),
    }
}

fn how_found(include: &Path) -> String {
    match env::var("LIBTORCH_INCLUDE") {
        Ok(root) => format!("{} (from LIBTORCH_INCLUDE={root})", include.display()),
        Err(_) => format!(
            "{} (DEP_TCH_LIBTORCH_LIB from torch-sys, then ../include)",
            include.display()
        ),
    }
}
