//! The `hotline` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hotline::config::Config;
use hotline::runtime::Hotline;

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "Telephony IVR and ACD engine for a property-service hotline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Starts the hotline (embedded defaults when no config is given).
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Checks a config file and the prompts it names, then exits.
    CheckConfig { path: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::CheckConfig { path } => {
            match Config::load(&path).and_then(|c| c.load_prompts(&path).map(|_| c)) {
                Ok(_) => {
                    println!("{}: ok", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run { config } => run(config),
    }
}

fn run(path: Option<PathBuf>) -> ExitCode {
    let (config, origin) = match &path {
        Some(p) => match Config::load(p) {
            Ok(c) => (c, p.clone()),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => (Config::default(), PathBuf::from("(embedded defaults)")),
    };
    let prompts = match config.load_prompts(&origin) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let hotline = match Hotline::bind(config.clone(), prompts).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        let sip = hotline.local_addr();
        println!(
            "hotline listening: SIP udp+tcp {sip}, RTP {}:{}-{}, prompts {} ({}), config {}",
            config.media.ip,
            config.media.rtp_port_min,
            config.media.rtp_port_max,
            config.prompts.dir.display(),
            config.prompts.language,
            origin.display()
        );
        hotline.serve(shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
