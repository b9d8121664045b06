//! The `redmux` command: load the config, start discovery and the workers, drain on
//! SIGTERM.

use clap::Parser;
use redmux::config::{Config, LogFormat};
use redmux::reload::{Reloader, SetLogLevel};
use redmux::topology::{Topology, TopologyCell};
use redmux::worker::{start_workers, Proxy};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// A Redis-protocol proxy for Sentinel-managed master/replica groups.
#[derive(Parser, Debug)]
#[command(name = "redmux", version, about)]
struct Cli {
    /// Config file: `*.toml` is redmux TOML, anything else predixy-style.
    #[arg(
        short,
        long,
        value_name = "FILE",
        required_unless_present = "health_check"
    )]
    config: Option<PathBuf>,
    /// Validate the config and exit (0 when valid).
    #[arg(long)]
    check: bool,
    /// Serve /metrics, /healthz and /readyz on this address (overrides the config).
    #[arg(long, value_name = "ADDR")]
    metrics_bind: Option<std::net::SocketAddr>,
    /// GET http://ADDR/healthz and exit 0 when it answers 200 (for container health checks).
    #[arg(long, value_name = "ADDR")]
    health_check: Option<String>,
}

/// Exit code for a bad config (EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(addr) = &cli.health_check {
        return redmux::admin::health_check(addr);
    }
    let Some(path) = cli.config.as_ref() else {
        return ExitCode::from(2);
    };
    let mut config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(m) = cli.metrics_bind {
        config.metrics_bind = Some(m);
    }
    if cli.check {
        // The certificate files are part of what must work at start.
        if let Some(Err(e)) = config.tls.as_ref().map(redmux::tls::ClientTls::load) {
            eprintln!("{}: [tls]: {e}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
        for w in &config.warnings {
            eprintln!("{}:{}: warning: {}", path.display(), w.line, w.message);
        }
        println!("{}: configuration is valid", path.display());
        for line in config.summary() {
            println!("  {line}");
        }
        return ExitCode::SUCCESS;
    }
    let set_log_level = init_logging(&config);
    tracing::info!(config = %path.display(), version = env!("CARGO_PKG_VERSION"), "config loaded");
    for w in &config.warnings {
        tracing::warn!(config = %path.display(), line = w.line, "{}", w.message);
    }
    let reloader = Reloader {
        path: path.clone(),
        set_log_level,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config, reloader))
}

async fn serve(config: Config, reloader: Reloader) -> ExitCode {
    let names: Vec<String> = config
        .sentinel_pool
        .groups
        .iter()
        .map(|g| g.name.clone())
        .collect();
    let cell = Arc::new(TopologyCell::new(Topology::unknown(&names)));
    let bind = config.bind;
    let workers = config.worker_threads;
    let client_tls = match config.tls.as_ref().map(redmux::tls::ClientTls::load) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            tracing::error!(error = %e, "cannot load the TLS certificate");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let backend_tls = match redmux::backend_tls::BackendTls::load_both(&config.sentinel_pool.tls) {
        Ok((servers, _)) => servers,
        Err(e) => {
            tracing::error!(error = %e, "cannot load the backend TLS settings");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let proxy = Arc::new(Proxy::new(config, cell.clone()));
    if let Some(tls) = backend_tls {
        let _ = proxy.backend_tls.set(tls);
    }
    let pool = proxy.config.sentinel_pool.clone();
    if let Err(e) = redmux::discovery::spawn(pool, cell, proxy.metrics.discovery.clone()) {
        tracing::error!(error = %e, "cannot start discovery");
        return ExitCode::FAILURE;
    }
    let _ = proxy.reloader.set(reloader);
    if let Some(tls) = client_tls {
        let _ = proxy.client_tls.set(tls);
        spawn_tls_reload(proxy.clone());
    }
    spawn_reload_on_hangup(proxy.clone());
    tokio::spawn(redmux::metrics::sampler(proxy.clone()));
    if let Some(addr) = proxy.config.metrics_bind {
        if let Err(e) = redmux::admin::serve_http(proxy.clone(), addr).await {
            tracing::error!(%addr, error = %e, "cannot listen for metrics");
            return ExitCode::FAILURE;
        }
    }
    let handles = match start_workers(proxy.clone()) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(%bind, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%bind, workers, "listening");
    wait_for_signal().await;
    tracing::info!("shutting down: no new clients, draining requests in flight");
    let _ = proxy.shutdown.send(true);
    let joined = tokio::task::spawn_blocking(move || {
        for h in handles {
            let _ = h.join();
        }
    });
    let _ = tokio::time::timeout(redmux::worker::DRAIN_GRACE * 2, joined).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Checks the TLS certificate files for changes every few seconds.
fn spawn_tls_reload(proxy: Arc<Proxy>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(redmux::tls::RELOAD_CHECK).await;
            if let Some(tls) = proxy.client_tls.get() {
                tls.reload_if_changed();
            }
        }
    });
}

/// SIGHUP reloads the config (a bad one is logged and ignored).
fn spawn_reload_on_hangup(proxy: Arc<Proxy>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: config reload only by command");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            let _ = redmux::reload::reload(&proxy);
        }
    });
}

/// Starts logging to stderr, filtered by `RUST_LOG` or `log_level`. The filter can be
/// replaced at run time (`CONFIG SET log_level`, reload) unless `RUST_LOG` is set, which
/// wins over the config; returns how to change it.
fn init_logging(config: &Config) -> Option<SetLogLevel> {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::{fmt, layer::SubscriberExt, reload, util::SubscriberInitExt};
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let env_set = from_env.is_some();
    let (initial, filter) = from_env
        .into_iter()
        .chain([config.log_level.clone()])
        .find_map(|level| Some((level.clone(), EnvFilter::try_new(&level).ok()?)))
        .unwrap_or_else(|| ("info".to_string(), EnvFilter::new("info")));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match config.log_format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init(),
        LogFormat::Plain => registry
            .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
            .init(),
    }
    redmux::admin::set_log_control(initial, move |level| {
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    });
    if env_set {
        return None;
    }
    Some(Box::new(redmux::admin::apply_log_level))
}
