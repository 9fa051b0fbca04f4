//! The `trailhound` binary: parse arguments, set up logging and signals, run, exit.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use trailhound::app;
use trailhound::cli::{Cli, Command, LogFormat};

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => builder
            .fmt_fields(trailhound::logging::escaped_fields())
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(|| trailhound::logging::JsonControlEscaping(std::io::stderr()))
            .init(),
    }
}

/// SIGINT/SIGTERM set `flag` (stop reading, drain, summarise); a second one exits at once.
fn install_signals(flag: &Arc<AtomicBool>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(())
}

fn run() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    let shutdown = Arc::new(AtomicBool::new(false));
    let code = match &cli.command {
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "trailhound", &mut std::io::stdout());
            Ok(0)
        }
        Some(Command::Man) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(0)
        }
        Some(Command::Rules(cmd)) => {
            init_logging("warn", LogFormat::Text);
            app::rules::run(cmd)
        }
        Some(Command::Config(trailhound::cli::ConfigCommand::Check { file })) => {
            init_logging("warn", LogFormat::Text);
            app::config_check(file)
        }
        Some(Command::Archive(cmd)) => {
            init_logging("info", LogFormat::Text);
            app::archive(cmd)
        }
        Some(Command::Run(args)) => {
            init_logging(&args.log_level, args.log_format);
            install_signals(&shutdown)?;
            app::run(args, shutdown)
        }
        Some(Command::Detect(_)) | None => {
            let args = match &cli.command {
                Some(Command::Detect(a)) => a,
                _ => &cli.detect,
            };
            init_logging(&args.log_level, args.log_format);
            install_signals(&shutdown)?;
            app::detect(args, shutdown)
        }
    };
    match code {
        Ok(c) => Ok(c),
        Err(e) => {
            tracing::error!("{e:#}");
            Ok(e.exit_code())
        }
    }
}

fn main() {
    // A file-size limit (`ulimit -f`) makes writes fail with EFBIG, which the archive
    // waits out like a full disk, instead of killing the process.
    // SAFETY: setting a signal's disposition to "ignore" before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let code = match run() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trailhound: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
