//! `warrenctl`: the command-line client of Warren's admin API.
//! Everything lives in `warren::ctl`; run `warrenctl --help`.

fn main() -> std::process::ExitCode {
    let code = warren::ctl::run(std::env::args_os(), &mut std::io::stdout(), &mut std::io::stderr());
    std::process::ExitCode::from(code)
}
