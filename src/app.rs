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
    /// Key protecting personal data at rest (64 hex digits); when None, read from (or, for a
    /// database without one yet, created in) the key file.
    pub pii_key: Option<String>,
    /// Where the personal-data key lives when not given directly; None: beside the SQLite
    /// database file (`yingji.db.key`), see [`crate::keys::default_key_file`].
    pub pii_key_file: Option<std::path::PathBuf>,
    /// Longest a request may take; a slower one is answered 408 and its transaction rolled back.
    pub request_timeout: std::time::Duration,
    /// Most requests handled at once; more are answered 503 at once instead of queueing.
    pub max_concurrent_requests: usize,
    /// Whether this instance runs the scheduler and the notification dispatcher.
    pub scheduler: bool,
    /// Attempts before a delivery, a reminder or a job occurrence is parked as `failed`.
    pub max_delivery_attempts: i64,
    /// Seconds a claim on background work lasts without renewal (see `crate::scheduler::lease`).
    pub lease_seconds: u64,
    /// Address people use to reach the service, for links in messages (default from `listen`).
    pub public_url: Option<String>,
    /// Directory of `YYYY.toml` working-day calendar files added to (or replacing years of) the
    /// shipped calendar.
    pub calendar_dir: Option<std::path::PathBuf>,
    /// Directory of plan files loaded on first start instead of the shipped (compiled-in) set.
    pub plans_dir: Option<std::path::PathBuf>,
    /// How long an `Idempotency-Key` is remembered (hours; default 24). Expired keys are purged
    /// by the `idempotency_purge` job.
    pub idempotency_ttl_hours: i64,
    /// Base-map tile URL template for the console's map (`{z}/{x}/{y}`, e.g. 天地图 with the
    /// bureau's key or an internal tile server). None: no base map, no request leaves the service.
    pub tile_url: Option<String>,
    /// Attribution shown under the base map.
    pub tile_attribution: Option<String>,
    /// Answer nearest teams and nearest supplies from the in-process indexes when they reflect
    /// the committed state (default true; false: always from the database).
    pub nearest_index: bool,
    /// Serve who a token stands for and region-list pages from the in-process caches of
    /// `crate::freshness` (default true; false: every request reads the database).
    pub read_caches: bool,
    /// Bearer token a monitoring system (Prometheus) uses to read `/metrics` and nothing else
    /// (`YINGJI_METRICS_TOKEN`). None: only API tokens of banner-level admins read the metrics.
    pub metrics_token: Option<String>,
    /// Department and unit codes (`DDDUUU`) in the CAP identifiers of warnings issued here.
    pub cap_issuer_code: crate::warnings::cap::IssuerCode,
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
            pii_key_file: None,
            request_timeout: std::time::Duration::from_secs(120),
            max_concurrent_requests: 256,
            scheduler: true,
            max_delivery_attempts: 8,
            lease_seconds: 60,
            public_url: None,
            calendar_dir: None,
            plans_dir: None,
            idempotency_ttl_hours: crate::supplies::idempotency::DEFAULT_TTL_HOURS,
            tile_url: None,
            cap_issuer_code: Default::default(),
            tile_attribution: None,
            nearest_index: true,
            read_caches: true,
            metrics_token: None,
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
    /// What the background loop has done (passes, for tests and metrics).
    pub background: crate::scheduler::Activity,
    /// Requests in progress (at most `config.max_concurrent_requests`).
    pub in_flight: tokio::sync::Semaphore,
    /// The nearest-teams index (never stale: see `forces::team_index`).
    pub team_index: crate::forces::team_index::TeamIndex,
    /// The nearest-supplies index (never stale: see `supplies::supply_index`).
    pub supply_index: crate::supplies::supply_index::SupplyIndex,
    /// The one check of the read caches' change record per request (see `crate::freshness`).
    pub freshness: Arc<crate::freshness::Freshness>,
    /// Who the bearer tokens seen valid stand for, by token hash (never stale: `freshness`).
    pub principals: crate::freshness::Cached<String, crate::auth::Principal>,
    /// Pages of `GET /api/v1/regions` as sent (never stale: `freshness`).
    pub region_pages: crate::freshness::Cached<crate::regions::routes::PageKey, bytes::Bytes>,
    /// Supply items by code, as the catalogue holds them (never stale: `freshness`).
    pub items: crate::freshness::Cached<String, crate::supplies::catalogue::Item>,
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
pub async fn start(mut config: Config, clock: SharedClock) -> anyhow::Result<Server> {
    let calendar = crate::plans::calendar::Calendar::load(config.calendar_dir.as_deref())?;
    let db = prepare_db(&config, &clock).await?;
    let cipher = match crate::keys::open(&config, &db).await {
        Ok(c) => c,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    // Readiness runs left `running` by an instance that died are marked failed once their lease
    // has lapsed (at start-up, and whenever a run starts or its status is read).
    if let Err(e) = crate::readiness::store::abandon_lapsed(&db, crate::time::Timestamp(clock.now())).await {
        tracing::warn!(error = %e, "cannot look for abandoned readiness runs");
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    // The address actually bound (port 0 picks one), for links in messages.
    config.listen = addr;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let max_concurrent = config.max_concurrent_requests.max(1);
    let nearest_index = config.nearest_index;
    let read_caches = config.read_caches;
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
        http: reqwest::Client::builder().timeout(crate::notify::dispatch::SEND_TIMEOUT).build()?,
        calendar,
        background: Default::default(),
        in_flight: tokio::sync::Semaphore::new(max_concurrent),
        team_index: crate::forces::team_index::TeamIndex::new(nearest_index),
        supply_index: crate::supplies::supply_index::SupplyIndex::new(nearest_index),
        freshness: Arc::new(crate::freshness::Freshness::new(read_caches)),
        principals: crate::freshness::Cached::new(crate::freshness::Topic::Auth, 10_000),
        region_pages: crate::freshness::Cached::new(crate::freshness::Topic::Regions, 1_000),
        items: crate::freshness::Cached::new(crate::freshness::Topic::Catalogue, 10_000),
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
