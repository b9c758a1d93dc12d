//! The `parley` binary: `serve` runs the server; `bench` (the
//! `parley-bench` crate, behind the default `bench` feature) measures one.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use parley_server::Config;

#[derive(Parser)]
#[command(
    name = "parley",
    version,
    about = "Parley: a self-hostable messaging server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Measure a server (see BENCHMARKS.md).
    #[cfg(feature = "bench")]
    Bench(parley_bench::BenchArgs),
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PARLEY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        #[cfg(feature = "bench")]
        Command::Bench(args) => runtime.block_on(parley_bench::run(args)),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(data_dir) = args.data_dir {
        config.data_dir = data_dir;
    }
    if let Some(database) = args.database {
        config.database = Some(database);
    }
    let config = config.check()?;
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
