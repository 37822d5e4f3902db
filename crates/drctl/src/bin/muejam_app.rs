//! The local MueJam API's processes (instances, load balancer, migration
//! jobs), started by `drctl local up` and the local app platform.

fn main() -> std::process::ExitCode {
    muejam_app::cli::main()
}
