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

use std::env;
use std::path::Path;

fn main() {
    // Declaring any rerun-if line stops Cargo from rerunning this script on
    // every change to any file in the package; only this file matters here.
    println!("cargo:rerun-if-changed=build.rs");
    // torch-sys publishes the lib dir under its `links = "tch"` key, so Cargo
    // hands it to us (a direct dependent) as DEP_TCH_LIBTORCH_LIB. Rerun when
    // it changes, e.g. after switching to another libtorch or PyTorch.
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");

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
