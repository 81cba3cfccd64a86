//! The facegate binary: parsing and dispatch live in the library (`facegate::cli`).

fn main() -> std::process::ExitCode {
    facegate::cli::main()
}
