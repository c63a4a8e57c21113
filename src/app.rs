//! The running service: configuration, shared state, start-up (connect, migrate, seed) and
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use warp::Filter;

use crate::clock::SharedClock;
use crate::db::{Db, DbOptions};
use crate::http::router::Router;
use crate::metrics::Metrics;
use crate::personal::Cipher;

/// Service configuration (from flags and environment variables; see `yingji serve --help`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Database to use.
    pub db: DbOptions,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest JSON body accepted, bytes.
    pub max_body_bytes: u64,
    /// Largest CSV import accepted, bytes.
    pub max_import_bytes: u64,
    /// Whether to load the shipped data (banner regions, …) into an empty database.
    pub seed: bool,
    /// Key protecting personal data at rest (64 hex digits); when None, read from (or created
    /// in) `pii_key_file`.
    pub pii_key: Option<String>,
    /// Where the personal-data key lives when not given directly.
    pub pii_key_file: std::path::PathBuf,
    /// Whether this instance runs the scheduler and the notification dispatcher.
    pub scheduler: bool,
    /// Delivery attempts before a notification is marked failed.
    pub max_delivery_attempts: i64,
    /// Directory of `YYYY.toml` working-day calendar files added to (or replacing years of) the
    /// shipped calendar.
    pub calendar_dir: Option<std::path::PathBuf>,
    /// Directory of plan files loaded on first start instead of the shipped (compiled-in) set.
    pub plans_dir: Option<std::path::PathBuf>,
    /// Base-map tile URL template for the console's map (`{z}/{x}/{y}`, e.g. 天地图 with the
    /// bureau's key or an internal tile server). None: no base map, no request leaves the service.
    pub tile_url: Option<String>,
    /// Attribution shown under the base map.
    pub tile_attribution: Option<String>,
}

impl Config {
    /// Defaults for the given database URL (used by tests and the CLI).
    pub fn new(database_url: impl Into<String>) -> Config {
        Config {
            db: DbOptions { url: database_url.into(), max_connections: 8 },
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            max_import_bytes: 64 * 1024 * 1024,
            seed: true,
            pii_key: None,
            pii_key_file: "yingji.key".into(),
            scheduler: true,
            max_delivery_attempts: 8,
            calendar_dir: None,
            plans_dir: None,
            tile_url: None,
            tile_attribution: None,
        }
    }
}

/// State shared by every request and background task.
pub struct AppState {
    /// Database pool.
    pub db: Db,
    /// Source of "now".
    pub clock: SharedClock,
    /// Configuration.
    pub config: Config,
    /// Request metrics.
    pub metrics: Metrics,
    /// Served routes.
    pub router: Router,
    /// Flips to true when shutdown starts; background tasks watch it.
    pub shutdown: watch::Receiver<bool>,
    /// Encrypts personal data at rest.
    pub cipher: Cipher,
    /// Wakes the scheduler early (after a change that makes something due sooner).
    pub wake: tokio::sync::Notify,
    /// This instance's id (who claimed a job or a delivery).
    pub instance_id: String,
    /// HTTP client for webhooks.
    pub http: reqwest::Client,
    /// Working days (official holidays and make-up days) for deadlines.
    pub calendar: crate::plans::calendar::Calendar,
}

/// Loads the personal-data key: from configuration, else from the key file, which is created
/// (mode 0600) with a random key on first start. Several instances sharing PostgreSQL must share
/// the key: set `YINGJI_PII_KEY` (or the same key file) on all of them.
pub fn load_cipher(config: &Config) -> anyhow::Result<Cipher> {
    if let Some(k) = &config.pii_key {
        return Cipher::from_hex(k).map_err(|e| anyhow::anyhow!(e));
    }
    let path = &config.pii_key_file;
    match std::fs::read_to_string(path) {
        Ok(k) => Cipher::from_hex(&k).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let k = Cipher::generate_hex();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            use std::io::Write;
            opts.open(path)
                .and_then(|mut f| f.write_all(k.as_bytes()))
                .map_err(|e| anyhow::anyhow!("cannot create key file {}: {e}", path.display()))?;
            tracing::warn!(path = %path.display(), "created a new personal-data key file; back it up: without it, ID numbers and phones cannot be read");
            Cipher::from_hex(&k).map_err(|e| anyhow::anyhow!(e))
        }
        Err(e) => Err(anyhow::anyhow!("cannot read key file {}: {e}", path.display())),
    }
}

/// Opens the database, applies migrations, and loads the shipped data into an empty database.
pub async fn prepare_db(config: &Config, clock: &SharedClock) -> anyhow::Result<Db> {
    use anyhow::Context as _;
    let db = Db::connect(&config.db).await.context("connecting to the database")?;
    db.migrate().await.context("migrating the database")?;
    if config.seed {
        crate::seed::load_shipped(&db, clock, config.plans_dir.as_deref()).await.context("loading the shipped data")?;
    }
    Ok(db)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "yingji".into())
}

/// A running service.
pub struct Server {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Shared state.
    pub state: Arc<AppState>,
    shutdown_tx: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Server {
    /// Starts graceful shutdown: stop accepting, finish in-flight requests, stop background
    /// tasks, close the database. Returns when all of that is done.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let _ = self.handle.await;
    }

    /// Waits until the server stops (after a shutdown signal).
    pub async fn wait(self) {
        let _ = self.handle.await;
    }

    /// A sender that triggers shutdown when sent `true`.
    pub fn shutdown_trigger(&self) -> watch::Sender<bool> {
        self.shutdown_tx.clone()
    }
}

/// Starts the service on `config.listen` (port 0 picks a free port).
pub async fn start(config: Config, clock: SharedClock) -> anyhow::Result<Server> {
    let cipher = load_cipher(&config)?;
    let calendar = crate::plans::calendar::Calendar::load(config.calendar_dir.as_deref())?;
    let db = prepare_db(&config, &clock).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = Arc::new(AppState {
        db,
        clock,
        config,
        metrics: Metrics::default(),
        router: crate::routes::router(),
        shutdown: shutdown_rx.clone(),
        cipher,
        wake: tokio::sync::Notify::new(),
        instance_id: format!("{}-{}", hostname(), crate::auth::tokens::random_hex16()),
        http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?,
        calendar,
    });
    let filter = crate::web::filter(state.clone()).or(crate::http::filter(state.clone())).unify();
    let mut rx = shutdown_rx;
    let signal = async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let scheduler = state.config.scheduler.then(|| crate::scheduler::spawn(state.clone()));
    let st = state.clone();
    let handle = tokio::spawn(async move {
        warp::serve(filter).incoming(listener).graceful(signal).run().await;
        tracing::info!("HTTP server stopped");
        if let Some(s) = scheduler {
            let _ = s.await;
        }
        tracing::info!("background tasks stopped; closing database");
        st.db.close().await;
    });
    tracing::info!(%addr, backend = ?state.db.backend(), "yingji listening");
    Ok(Server { addr, state, shutdown_tx, handle })
}
