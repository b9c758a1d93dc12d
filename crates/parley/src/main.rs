//! The `parley` binary: `serve` runs the server; `bench` (the
//! `parley-bench` crate, behind the default `bench` feature) measures one;
//! the client commands (`login`, `send`, `listen`, ..., in the `parley`
//! library's `cli` module) and `chat` (its `chat` module, behind the
//! default `chat` feature) talk to one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use parley_server::Config;
use parley_server::config::LogFormat;

#[derive(Parser)]
#[command(
    name = "parley",
    version,
    about = "Parley: a self-hostable messaging server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Which stored login the client commands use (env PARLEY_PROFILE;
    /// default: the default one).
    #[arg(long, global = true, env = "PARLEY_PROFILE")]
    profile: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Measure a server (see BENCHMARKS.md).
    #[cfg(feature = "bench")]
    Bench(parley_bench::BenchArgs),
    #[command(flatten)]
    Client(parley::cli::ClientCommand),
    /// The terminal chat client.
    #[cfg(feature = "chat")]
    Chat(parley::chat::ChatArgs),
}

#[derive(Parser)]
struct ServeArgs {
    /// Address to listen on (env PARLEY_LISTEN; default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (env PARLEY_DATA_DIR; default ./parley-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file; its keys are the Config fields.
    #[arg(long)]
    config: Option<PathBuf>,
    /// PostgreSQL URL instead of embedded SQLite (env PARLEY_DATABASE_URL).
    #[arg(long)]
    database: Option<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    // The client commands' stdout is for their output and their stderr for
    // one-line errors: only warnings are logged there.
    let default_log = match cli.command {
        Command::Serve(_) => "info",
        #[cfg(feature = "bench")]
        Command::Bench(_) => "info",
        _ => "warn",
    };
    // `serve` reads its configuration first: `log_format` is part of it.
    let serve_config = match &cli.command {
        Command::Serve(args) => match serve_config(args) {
            Ok(config) => Some(config),
            Err(err) => {
                eprintln!("Error: {err:?}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let log_format = match &serve_config {
        Some(config) => config.log_format,
        // The other commands log only warnings; the environment still
        // chooses the format.
        None => match std::env::var("PARLEY_LOG_FORMAT").as_deref() {
            Ok("json") => LogFormat::Json,
            _ => LogFormat::Text,
        },
    };
    init_logging(default_log, log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("parley: error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let profile = cli.profile.as_deref();
    let outcome = match cli.command {
        Command::Serve(_) => match serve_config {
            Some(config) => runtime.block_on(serve(config)),
            None => unreachable!("serve's configuration was read above"),
        },
        #[cfg(feature = "bench")]
        Command::Bench(args) => runtime.block_on(parley_bench::run(args)),
        Command::Client(command) => {
            return client_exit(runtime.block_on(parley::cli::run(command, profile)));
        }
        #[cfg(feature = "chat")]
        Command::Chat(args) => {
            return client_exit(runtime.block_on(parley::chat::run(args, profile)));
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:?}");
            ExitCode::FAILURE
        }
    }
}

/// A client command's outcome as its documented exit code, with the error
/// as one line on stderr.
fn client_exit(outcome: parley::cli::CliResult<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", err.line());
            ExitCode::from(err.exit)
        }
    }
}

/// `--help` and `--version` print as usual; a wrong command line is one
/// line on stderr and exit code 2.
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(parley::cli::error::exit::USAGE)
        } else {
            ExitCode::SUCCESS
        };
    }
    // clap's message, up to its usage block, as one line.
    let rendered = err.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
        .filter(|line| !line.is_empty() && !line.starts_with("tip:"))
        .collect();
    let message = message.join(" ");
    let message = message.trim_start_matches("error: ");
    eprintln!(
        "{}",
        parley::cli::CliError::usage(format!("{message} (see parley --help)")).line()
    );
    ExitCode::from(parley::cli::error::exit::USAGE)
}

/// Logs to stderr, filtered by `PARLEY_LOG` (else `default_level`), as
/// text or as one JSON object per line.
fn init_logging(default_level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARLEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// `serve`'s configuration: file, environment, then flags.
fn serve_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(data_dir) = &args.data_dir {
        config.data_dir = data_dir.clone();
    }
    if let Some(database) = &args.database {
        config.database = Some(database.clone());
    }
    Ok(config.check()?)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // A certificate that cannot be used stops the server before it says
    // it listens (the server reads the files again when it starts).
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        parley_server::tls::Tls::load(cert, key)?;
    }
    let listener = bind(config.listen, config.listen_backlog)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    // Scripts and tests read the port from this line (listen on :0).
    println!("parley listening on {local}");
    tracing::info!(%local, data_dir = %config.data_dir.display(), "serving");
    parley_server::run(listener, config, shutdown_signal()).await?;
    Ok(())
}

/// Binds with an explicit backlog: the default (1,024) overflowed when
/// 19,000 clients reconnected at once, and dropped SYNs are retried only
/// after 1, 3 and 7 s.
fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested");
}
