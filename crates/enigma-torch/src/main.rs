//! `enigma-run`: the runtime program. It takes the same command line as
//! `enigma` (whose `run` subcommand execs this program) and trains with the
//! libtorch backend; every other subcommand behaves as in `enigma`.

fn main() {
    let code = enigma::cli::main_with(std::env::args_os(), Some(&enigma_torch::TorchRuntime));
    std::process::exit(code);
}
