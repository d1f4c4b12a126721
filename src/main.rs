//! `enigma`: the command-line program (see `cli`).

fn main() {
    #[cfg(feature = "torch")]
    let code = enigma::cli::main_with(std::env::args_os(), Some(&enigma::run::torch::TorchRuntime));
    #[cfg(not(feature = "torch"))]
    let code = enigma::cli::main();
    std::process::exit(code);
}
