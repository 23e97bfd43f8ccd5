//! `herd`: run a server of the herd, the whole herd, or a scripted client; make the herd's
//! certificates; ask the herd how it is.
//!
//! The server itself lives in the `herd-actors` library and the load generator (`herd bench`)
//! in `herd-bench`; this binary only parses the command line, loads `herd.toml` and waits for
//! a signal.

/// `herd certs`: a CA and a certificate per server, for TLS peer links.
mod certs;
/// `herd client`: lines to a server, replies to stdout.
mod client;
/// Readiness told as systemd asks (`NOTIFY_SOCKET`), to a unit or to `herd up`.
mod notify;
/// SIGTERM, SIGINT and SIGHUP, handled from the start.
mod signals;
/// `herd status`: every server's admin `/status`, as one table.
mod status;
/// `herd up`: the whole herd as child processes.
mod up;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use herd_actors::settings::Settings;

#[derive(Parser)]
#[command(
    name = "herd",
    version,
    about = "A herd of servers that share where clients are"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server NAME of herd.toml until SIGTERM or Ctrl-C.
    Serve {
        /// A server name from the config file (case-sensitive).
        name: String,
        #[arg(long, default_value = "herd.toml")]
        config: PathBuf,
    },
    /// Run every server of the config file, each as its own process, until Ctrl-C.
    Up {
        #[arg(long, default_value = "herd.toml")]
        config: PathBuf,
    },
    /// Send each argument (or, with none, each line of stdin) as one line; print each reply.
    Client {
        /// A server name from the config file, or an address such as 127.0.0.1:12000.
        target: String,
        /// Lines to send, one argument each.
        lines: Vec<String>,
        #[arg(long, default_value = "herd.toml")]
        config: PathBuf,
    },
    /// Make a CA and a certificate and key for each server of the config, for TLS peer links.
    Certs {
        #[arg(long, default_value = "herd.toml")]
        config: PathBuf,
        /// Where to write (default: the config's tls.dir, else ./tls).
        #[arg(long)]
        out: Option<PathBuf>,
        /// How long each server's certificate is valid, in days.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        /// Replace existing files: every file is made afresh, with a new CA.
        #[arg(long)]
        force: bool,
    },
    /// Ask every server of the config for its status (admin listener) and print one table;
    /// exits non-zero unless every server answers, serves and has all its links up.
    Status {
        #[arg(long, default_value = "herd.toml")]
        config: PathBuf,
        /// Redraw the table every second until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// Load a herd, this one or any that speaks the herd protocol (docs/protocol.md), and report
    /// what it sustained.
    #[command(subcommand)]
    Bench(herd_bench::Scenario),
}

fn main() -> ExitCode {
    env_logger::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { name, config } => serve(&name, &config),
        Command::Up { config } => up::run(&config),
        Command::Client {
            target,
            lines,
            config,
        } => client::run(&target, &lines, &config),
        Command::Certs {
            config,
            out,
            days,
            force,
        } => certs::run(&certs::Request {
            config: &config,
            out: out.as_deref(),
            days,
            force,
        }),
        Command::Status { config, watch } => status::run(&config, watch),
        Command::Bench(scenario) => herd_bench::run(scenario).map_err(anyhow::Error::msg),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` gives the whole chain: what failed, then why.
            eprintln!("herd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(name: &str, config_path: &Path) -> anyhow::Result<()> {
    let config = Settings::load(config_path)?;
    let addr = herd_actors::preflight(&config, name)?.addr;
    raise_open_files_limit();
    let system = actix::System::new();
    system.block_on(async {
        // First, so that a signal while the store loads stops the server cleanly, and a
        // SIGHUP reopens the log rather than ending it.
        let mut signals = signals::Signals::install()?;
        let listener = herd_actors::bind(addr)
            .with_context(|| format!("cannot listen on {addr} for server {name}"))?;
        let server = herd_actors::start(&config, name, listener).await?;
        let admin = server
            .admin_addr()
            .map_or(String::new(), |a| format!(", admin: http://{a}/"));
        let workers = config.workers();
        eprintln!(
            "herd: {name} serving on {} with {workers} worker thread{} (log: {}{admin})",
            server.addr,
            if workers == 1 { "" } else { "s" },
            server.log_path().display()
        );
        notify::tell("READY=1");
        let signal = loop {
            match signals.next().await {
                signals::Sig::Hup => server.reopen_log(),
                stop => break stop,
            }
        };
        notify::tell("STOPPING=1");
        server
            .shut_down(&format!("{name} stopping on {}", signal.name()))
            .await
            .context("cannot finish the event log")
    })
}

/// Each connection is a file descriptor, and the usual soft limit (1024) is far below what
/// a server holds; raise it to the hard limit the operator allows.
fn raise_open_files_limit() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        log::warn!("cannot raise the open files limit: {e}");
    }
}
