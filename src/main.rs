//! The `yingji` binary: parses the command line and hands over to [`yingji::cli`].

fn main() -> std::process::ExitCode {
    yingji::cli::main()
}
