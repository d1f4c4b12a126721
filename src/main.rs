//! The `enigma` binary: a thin shell over [`enigma::cli`].

fn main() {
    std::process::exit(enigma::cli::main())
}
