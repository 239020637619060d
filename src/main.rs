fn main() -> std::process::ExitCode {
    opsh::cli::main()
}
