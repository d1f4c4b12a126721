//! `enigma`: the front-end program (see `cli`). It links no libtorch;
//! `enigma run` hands its command line to the runtime program `enigma-run`.

fn main() {
    std::process::exit(enigma::cli::main());
}
