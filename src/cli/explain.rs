//! `enigma explain CODE`: print the page for a diagnostic code.

use super::{EXIT_OK, EXIT_USAGE};
use crate::diagnostics::Code;

pub fn run(code: Option<&str>) -> i32 {
    let Some(code) = code else {
        for c in Code::ALL {
            println!("{}  {}", c.as_str(), c.title());
        }
        return EXIT_OK;
    };
    match Code::parse(code) {
        Some(c) => {
            print!("{}", c.page());
            EXIT_OK
        }
        None => {
            eprintln!("error: `{code}` is not a diagnostic code");
            eprintln!("run `enigma explain` to list every code");
            EXIT_USAGE
        }
    }
}
