#!/usr/bin/env bash
# dev.sh: the two commands of the quick start.
#
#   ./dev.sh quickstart   set up what is missing, build, run the quick-start example
#   ./dev.sh test         set up what is missing, run the whole suite (what CI runs)
#   ./dev.sh env          print the exports the build needs, for: eval "$(./dev.sh env)"
#
# Set-up is idempotent and silent when everything is already there; each
# set-up action it does take prints one line. See docs/setup.md.
#
# Environment knobs:
#   ENIGMA_TORCH_VENV=DIR  virtualenv holding torch==2.11.0
#                          (default ~/.cache/enigma/torch-2.11.0; created or
#                          completed if needed, never deleted)
#   LIBTORCH=DIR           use an existing libtorch 2.11.0 instead of PyTorch
#                          (no virtualenv; LIBTORCH_USE_PYTORCH is unset)
#   ENIGMA_SKIP_APT=1      never install Debian packages
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

TORCH_VERSION=2.11.0 # what tch 0.24.0 (Cargo.toml) is built against
# The Python packages the tests read our run files back with (TensorBoard's
# event files, safetensors checkpoints), pinned to the versions tested.
PY_READERS=(tensorboard==2.21.0 safetensors==0.8.0)
# Cargo.toml's rust-version: the highest rust-version any package of
# Cargo.lock declares (`./dev.sh test` checks it, see check_rust_version).
MIN_RUST=1.89
VENV=${ENIGMA_TORCH_VENV:-$HOME/.cache/enigma/torch-$TORCH_VERSION}
LOG_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/enigma/logs
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

# Debian packages the build and the tests use, each for a reason:
# - build-essential: torch-sys compiles a C++ shim and links libgomp;
# - libopenmpi-dev: the `mpi` crate (rsmpi, in crates/enigma-torch) links
#   OpenMPI, and its build script asks `mpicc` for the flags;
# - libclang-dev: rsmpi's mpi-sys generates its bindings with bindgen,
#   which loads libclang;
# - openmpi-bin: `mpirun`, which crates/enigma-torch/tests/layouts.rs starts
#   its multi-process runs with (`enigma run --nproc` uses it when present);
# - libhdf5-dev and pkg-config: the `nwb` feature links libhdf5, found
#   through pkg-config;
# - graphviz: tests/plan_dot.rs renders `enigma plan --emit dot` with `dot`.
APT_PACKAGES=(build-essential pkg-config libclang-dev libopenmpi-dev openmpi-bin libhdf5-dev graphviz)
# The editor tests (editors/tests/): Debian's Neovim 0.7.2 as a real
# language-server client. Node and npm come from the machine (20 or newer,
# for VS Code's packaging tool); Debian's own are added only when missing.
APT_PACKAGES+=(neovim)

say() { printf 'dev.sh: %s\n' "$*"; }
die() {
    printf 'dev.sh: error: %s\n' "$*" >&2
    exit 1
}

# run_logged NAME CMD...: run CMD with its output in $LOG_DIR/NAME.log;
# on failure show the log's tail and stop.
run_logged() {
    local name=$1
    shift
    mkdir -p "$LOG_DIR"
    local log="$LOG_DIR/$name.log"
    if ! "$@" >"$log" 2>&1 </dev/null; then
        tail -n 40 "$log" >&2 || true
        die "$name failed: $* (full log: $log)"
    fi
}

# as_root CMD...: run CMD as root, through sudo only when not root already.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        die "need root to run '$*' and sudo is not installed (or set ENIGMA_SKIP_APT=1 and install the packages yourself)"
    fi
}

# ---------------------------------------------------------------- set-up ----

# torch_probe: print "<version without +local>\n<torch lib dir>" for the venv's
# torch, or fail when there is no importable torch. Importing torch takes a
# second or two, so the answer is kept in TORCH_PROBE (reset after installing).
TORCH_PROBE=
torch_probe() {
    if [ -z "$TORCH_PROBE" ]; then
        [ -x "$VENV/bin/python" ] || return 1
        TORCH_PROBE=$("$VENV/bin/python" -c '
import os, torch
print(torch.__version__.split("+")[0])
print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null </dev/null) || {
            TORCH_PROBE=
            return 1
        }
    fi
    printf '%s\n' "$TORCH_PROBE"
}

# torch_ok: the venv imports torch and it is exactly $TORCH_VERSION.
# (Not in a $(...) subshell, so that TORCH_PROBE is kept.)
torch_ok() {
    torch_probe >/dev/null || return 1
    [ "${TORCH_PROBE%%$'\n'*}" = "$TORCH_VERSION" ]
}

need_torch_venv() { [ -z "${LIBTORCH:-}" ] && ! torch_ok; }

have_cargo() {
    command -v cargo >/dev/null 2>&1 && return 0
    # rustup installed but this shell has not sourced ~/.cargo/env.
    if [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
        return 0
    fi
    return 1
}

ensure_apt() {
    local wanted=("${APT_PACKAGES[@]}")
    # Extra packages only when a later step needs them on this machine.
    have_cargo || wanted+=(curl ca-certificates)
    command -v node >/dev/null 2>&1 || wanted+=(nodejs)
    command -v npm >/dev/null 2>&1 || wanted+=(npm)
    if need_torch_venv && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        wanted+=(python3 python3-venv)
    fi
    [ "${ENIGMA_SKIP_APT:-0}" = 1 ] && return 0
    if ! command -v dpkg-query >/dev/null 2>&1; then
        say "not a Debian system: install the equivalents of ${wanted[*]} yourself (ENIGMA_SKIP_APT=1 silences this)"
        return 0
    fi
    local missing=() p
    for p in "${wanted[@]}"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    run_logged apt-get-update as_root apt-get update -q
    run_logged apt-get-install as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
}

ensure_rust() {
    if ! have_cargo; then
        say "installing Rust (stable, with rustfmt and clippy) via rustup"
        run_logged rustup-init sh -c 'curl --proto =https --tlsv1.2 -sSf https://sh.rustup.rs |
            sh -s -- -y --no-modify-path --profile minimal --component rustfmt,clippy'
        have_cargo || die "rustup finished but cargo is not in ${CARGO_HOME:-$HOME/.cargo}/bin"
    fi
    local v
    v=$(rustc --version | awk '{print $2}')
    if [ "$(printf '%s\n%s\n' "$MIN_RUST" "${v%%-*}" | sort -V | head -n1)" != "$MIN_RUST" ]; then
        die "rustc $v is older than $MIN_RUST (Cargo.toml rust-version): run 'rustup update stable'"
    fi
    local c
    for c in rustfmt clippy; do
        # `cargo fmt` / `cargo clippy` exist only with the component installed.
        if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
            command -v rustup >/dev/null 2>&1 || die "cargo $c is missing and there is no rustup to add it"
            say "adding Rust component $c"
            run_logged "rustup-$c" rustup component add "$c"
        fi
    done
}

ensure_torch() {
    if [ -n "${LIBTORCH:-}" ]; then
        [ -d "$LIBTORCH/lib" ] || die "LIBTORCH=$LIBTORCH has no lib/ directory"
        return 0
    fi
    torch_ok && return 0
    if [ ! -x "$VENV/bin/python" ]; then
        command -v python3 >/dev/null 2>&1 || die "python3 is needed to create $VENV"
        say "creating Python virtualenv $VENV"
        mkdir -p "$(dirname "$VENV")"
        run_logged venv python3 -m venv "$VENV"
    fi
    # Into an existing venv too (e.g. ENIGMA_TORCH_VENV with another torch):
    # pip replaces the torch there; nothing else is removed.
    say "installing torch==$TORCH_VERSION from PyPI into $VENV (about 4 GB, several minutes)"
    run_logged pip-torch "$VENV/bin/python" -m pip install --disable-pip-version-check \
        --progress-bar off "torch==$TORCH_VERSION"
    TORCH_PROBE=
    torch_ok || die "torch $TORCH_VERSION still does not import from $VENV/bin/python"
}

# ensure_py_readers: for the tests (not the quick start), the venv also gets
# the Python packages they read our files back with (tests/common/python.rs),
# when they are not there.
# `find_spec` looks a module up without importing it, so the check costs a
# bare interpreter start. With LIBTORCH there is no venv: those tests then
# look for a `python3` with the packages, and say they skipped outside CI.
ensure_py_readers() {
    [ -n "${LIBTORCH:-}" ] && return 0
    "$VENV/bin/python" -c '
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(m) is None for m in ("tensorboard", "safetensors")))' \
        >/dev/null 2>&1 </dev/null && return 0
    say "installing ${PY_READERS[*]} from PyPI into $VENV (what the tests read run files back with)"
    run_logged pip-readers "$VENV/bin/python" -m pip install --disable-pip-version-check \
        --progress-bar off "${PY_READERS[@]}"
}

# export_torch_env: what tch/torch-sys need to build, and test binaries to run.
export_torch_env() {
    local lib
    if [ -n "${LIBTORCH:-}" ]; then
        # torch-sys reads LIBTORCH (and optional LIBTORCH_LIB/LIBTORCH_INCLUDE).
        unset LIBTORCH_USE_PYTORCH
        lib="${LIBTORCH_LIB:-$LIBTORCH}/lib"
    else
        # torch-sys runs `python` when VIRTUAL_ENV is set (else `python3`) from
        # PATH to ask torch for its include and lib dirs.
        export VIRTUAL_ENV="$VENV"
        export PATH="$VENV/bin:$PATH"
        export LIBTORCH_USE_PYTORCH=1
        torch_probe >/dev/null || die "cannot import torch from $VENV/bin/python"
        lib=${TORCH_PROBE#*$'\n'}
    fi
    # Our build.rs also sets an rpath, so binaries and tests do not need this;
    # it covers anything built or run outside Cargo's link arguments.
    case ":${LD_LIBRARY_PATH:-}:" in
    *":$lib:"*) ;;
    *) export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
    esac
    # torch-sys does not rerun its build script when PATH/VIRTUAL_ENV point at
    # another torch, so a switch would keep linking the old one: remember the
    # lib dir and rebuild tch/torch-sys when it changes.
    local stamp="$TARGET_DIR/.enigma-libtorch-dir"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$lib" ]; then
        say "libtorch changed ($(cat "$stamp") -> $lib): rebuilding torch-sys"
        run_logged cargo-clean-torch cargo clean -p torch-sys -p tch
    fi
    mkdir -p "$TARGET_DIR"
    printf '%s\n' "$lib" >"$stamp"
}

setup() {
    ensure_apt
    ensure_rust
    ensure_torch
    export_torch_env
    # CI builds from a clean clone once: incremental artefacts are wasted there.
    if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"; fi
}

# ------------------------------------------------------------- commands ----

# step NAME CMD...: run one step of a command with its output visible; stop
# with a message naming the step when it fails.
STEP_TOTAL=0
STEP_NO=0
step() {
    local name=$1
    shift
    STEP_NO=$((STEP_NO + 1))
    say "[$STEP_NO/$STEP_TOTAL] $name: $*"
    if ! "$@"; then
        die "step '$name' failed (command: $*)"
    fi
}

# The quick start's main job: build (optimised: the data loader renders the
# synthetic video in Rust), then train the example on the CPU. The run
# directory is runs/quickstart; an earlier run there is moved aside rather
# than overwritten.
run_quickstart_example() {
    if [ -d runs/quickstart ]; then
        mv runs/quickstart "runs/quickstart.$(date +%Y%m%d-%H%M%S)"
    fi
    step "train the quick-start example" "$TARGET_DIR/release/enigma" run examples/quickstart.enigma --out runs/quickstart
}

cmd_quickstart() {
    setup
    STEP_TOTAL=2
    # Both programs: `enigma` and the runtime `enigma-run` it hands `run` to.
    step build cargo build --release --workspace
    run_quickstart_example
}

# check_rust_version: the rust-version of both manifests is MIN_RUST, and no
# package in Cargo.lock declares a higher one, so that a newer dependency
# cannot make the declared minimum a lie. It cannot see the packages that
# declare none, nor prove that MIN_RUST compiles (docs/setup.md says how
# the number was established); clippy's `incompatible_msrv` lint, part of
# the lint step, keeps our own code to the standard library of MIN_RUST.
check_rust_version() {
    local manifest declared newest
    for manifest in Cargo.toml crates/enigma-torch/Cargo.toml; do
        declared=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$manifest")
        if [ "$declared" != "$MIN_RUST" ]; then
            printf '%s has rust-version "%s", dev.sh MIN_RUST is %s\n' "$manifest" "$declared" "$MIN_RUST" >&2
            return 1
        fi
    done
    # Every package's `"rust_version":"X"` (null when it declares none),
    # padded to three numbers so that 1.89 and 1.89.0 compare equal.
    newest=$(cargo metadata --format-version 1 --locked |
        grep -o '"rust_version":"[0-9.]*"' | cut -d'"' -f4 |
        awk -F. '{ printf "%d.%d.%d\n", $1, $2, $3 }' | sort -V | tail -n1)
    [ -n "$newest" ] || {
        echo 'cargo metadata listed no rust_version at all' >&2
        return 1
    }
    local ours
    ours=$(echo "$MIN_RUST" | awk -F. '{ printf "%d.%d.%d\n", $1, $2, $3 }')
    if [ "$(printf '%s\n%s\n' "$newest" "$ours" | sort -V | tail -n1)" != "$ours" ]; then
        printf 'a package in Cargo.lock needs Rust %s, above rust-version %s: raise rust-version in both Cargo.toml files and MIN_RUST in dev.sh\n' "$newest" "$MIN_RUST" >&2
        return 1
    fi
}

cmd_test() {
    setup
    ensure_py_readers
    STEP_TOTAL=8
    step rust-version check_rust_version
    step format cargo fmt --all --check
    step lint cargo clippy --workspace --all-targets -- -D warnings
    # --no-fail-fast: report every test binary's summary, then fail the step.
    # Both packages: the front end (`enigma`) and the libtorch runtime
    # (`crates/enigma-torch`, the program `enigma-run`).
    step test cargo test --workspace --no-fail-fast
    # The front end with no C library at all (no libhdf5; libtorch is never
    # in the `enigma` package).
    step "lint (front end, no features)" cargo clippy -p enigma --no-default-features --all-targets -- -D warnings
    step "test (front end, no features)" cargo test -p enigma --no-default-features --no-fail-fast
    # The installed pair: `enigma run` hands over to `enigma-run` beside it.
    step "enigma run reaches enigma-run" run_dispatch_smoke
    # `enigma lsp` through Node's protocol client and headless Neovim, the
    # tree-sitter grammar and the VS Code extension (docs/editors.md). The
    # first run installs the tree-sitter CLI with cargo (about 5 minutes)
    # and the npm packages (under a minute), cached in ~/.cache/enigma.
    step editors env ENIGMA_BIN="$TARGET_DIR/debug/enigma" editors/tests/run.sh
    say "all steps passed"
}

# The front end hands `enigma run` to `enigma-run` beside it. An experiment
# with an error proves the hand-over: the runtime checks it and exits 1 with
# the diagnostic (E0105, an unknown name), where a front end that cannot
# find the runtime exits 2.
run_dispatch_smoke() {
    local dir out rc=0
    dir=$(mktemp -d)
    printf 'dim d = 64\nmodule M()(x: [d]) -> [d] {\n  return y\n}\n' >"$dir/bad.enigma"
    out=$(env -u ENIGMA_RUNTIME "$TARGET_DIR/debug/enigma" run --quiet --out "$dir/run" "$dir/bad.enigma" 2>&1) || rc=$?
    rm -rf "$dir"
    if [ "$rc" -eq 1 ] && [[ "$out" == *E0105* ]]; then
        return 0
    fi
    printf 'expected the runtime to report the error (exit 1), got exit %s:\n%s\n' "$rc" "$out" >&2
    return 1
}

cmd_env() {
    setup >&2
    # For plain `cargo test` in the caller's shell, as for ./dev.sh test.
    ensure_py_readers >&2
    printf 'export PATH=%q\n' "$PATH"
    printf 'export LD_LIBRARY_PATH=%q\n' "$LD_LIBRARY_PATH"
    if [ -n "${LIBTORCH:-}" ]; then
        printf 'export LIBTORCH=%q\nunset LIBTORCH_USE_PYTORCH\n' "$LIBTORCH"
    else
        printf 'export VIRTUAL_ENV=%q\nexport LIBTORCH_USE_PYTORCH=1\n' "$VIRTUAL_ENV"
    fi
}

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
quickstart) cmd_quickstart ;;
test) cmd_test ;;
env) cmd_env ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
