//! The command line: `serve` (default), `migrate`, `token create|list|revoke`, `regions import`,
//! `plans check|import`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::app::{self, Config};
use crate::audit::Actor;
use crate::clock::{SharedClock, SystemClock};
use crate::db::DbOptions;
use crate::error::ApiError;
use crate::regions;
use crate::time::Timestamp;
use crate::with_db;

mod accounts;
use accounts::{token, user};

/// yingji 应急准备服务 — 苏尼特左旗应急预案、物资、社会应急力量与演练管理。
#[derive(Debug, Parser)]
#[command(name = "yingji", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Options shared by every subcommand.
#[derive(Debug, Args)]
struct Global {
    /// Database: a SQLite file (`sqlite://yingji.db`, created if missing) or `postgres://user:pass@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://yingji.db", global = true)]
    database_url: String,
    /// Maximum database connections in the pool.
    #[arg(long, env = "YINGJI_DB_POOL_SIZE", default_value_t = 8, global = true)]
    db_pool_size: u32,
    /// Personal-data encryption key (64 hex digits). Overrides --pii-key-file.
    #[arg(long, env = "YINGJI_PII_KEY", global = true, hide_env_values = true)]
    pii_key: Option<String>,
    /// File holding the personal-data key (default: beside the SQLite database file, e.g.
    /// `yingji.db.key`); created with a random key on first start of a new database only.
    #[arg(long, env = "YINGJI_PII_KEY_FILE", global = true)]
    pii_key_file: Option<std::path::PathBuf>,
    /// Log format: `text` or `json`. Log level comes from `RUST_LOG` (default `info`).
    #[arg(long, env = "YINGJI_LOG_FORMAT", default_value = "text", global = true, value_parser = ["text", "json"])]
    log_format: String,
    /// Directory of working-day calendar files (`YYYY.toml`) that add to or replace the shipped years.
    #[arg(long, env = "YINGJI_CALENDAR_DIR", global = true)]
    calendar_dir: Option<std::path::PathBuf>,
    /// Directory of plan files loaded into an empty database instead of the shipped plan set.
    #[arg(long, env = "YINGJI_PLANS_DIR", global = true)]
    plans_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Apply database migrations and load the shipped data, then exit.
    Migrate,
    /// Issue, list and revoke API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Administrative divisions.
    #[command(subcommand)]
    Regions(RegionsCommand),
    /// Emergency plan files (plans/ directory).
    #[command(subcommand)]
    Plans(PlansCommand),
    /// The personal-data key.
    #[command(subcommand)]
    Pii(PiiCommand),
    /// Console users (log in with name and password at http://127.0.0.1:8080/).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
enum PiiCommand {
    /// Re-encrypt every ID number, phone and channel secret under a new random key in one
    /// transaction. The new key is written first to NEW_KEY_FILE (default: the key file + `.new`);
    /// after the commit the key file is replaced by it and the old key kept as `.old`.
    RotateKey {
        /// Where to write the new key (must not exist).
        #[arg(long)]
        new_key_file: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user who logs in to the console; the password is read from standard input.
    Create {
        /// User name (the login name).
        #[arg(long)]
        name: String,
        /// Role: admin, planner, operator or viewer.
        #[arg(long, value_parser = ["admin", "planner", "operator", "viewer"])]
        role: String,
        /// Jurisdiction: the 12-digit code of a region (e.g. 152523000000 for the whole banner).
        #[arg(long)]
        region: String,
    },
    /// Set a user's password (read from standard input); ends the user's sessions.
    SetPassword {
        /// User name.
        name: String,
    },
    /// Disable a user: no more logins, sessions ended, API tokens revoked.
    Disable {
        /// User name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum PlansCommand {
    /// Check every plan file in DIR (and DIR/templates); print each error as file:line:column; exit 1 on any error.
    Check {
        /// The directory, e.g. plans/.
        dir: std::path::PathBuf,
    },
    /// Import the plan files in DIR: new keys create plans, changed files create new draft versions, unchanged files nothing.
    Import {
        /// The directory, e.g. plans/.
        dir: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "YINGJI_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Largest JSON request body, in bytes.
    #[arg(long, env = "YINGJI_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: u64,
    /// Largest CSV import body, in bytes.
    #[arg(long, env = "YINGJI_MAX_IMPORT_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_import_bytes: u64,
    /// Run the scheduler and notification dispatcher in this instance (`on` or `off`).
    #[arg(long, env = "YINGJI_SCHEDULER", default_value = "on", value_parser = ["on", "off"])]
    scheduler: String,
    /// Longest a request may take, in seconds (slower ones: 408, rolled back).
    #[arg(long, env = "YINGJI_REQUEST_TIMEOUT_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout_secs: u64,
    /// Most requests handled at once (more: 503 with Retry-After).
    #[arg(long, env = "YINGJI_MAX_CONCURRENT_REQUESTS", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100000))]
    max_concurrent_requests: u64,
    /// Delivery attempts before a notification is marked failed.
    #[arg(long, env = "YINGJI_MAX_DELIVERY_ATTEMPTS", default_value_t = 8, value_parser = clap::value_parser!(i64).range(1..=100))]
    max_delivery_attempts: i64,
    /// Hours an Idempotency-Key is remembered (a retry after that is a new request).
    #[arg(long, env = "YINGJI_IDEMPOTENCY_TTL_HOURS", default_value_t = 24, value_parser = clap::value_parser!(i64).range(1..=24 * 365))]
    idempotency_ttl_hours: i64,
    /// Seconds a claim on background work (a delivery batch, a reminder batch, a job run) lasts
    /// without renewal; a crashed instance's claims are taken over this long after it died.
    #[arg(long, env = "YINGJI_LEASE_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=3600))]
    lease_seconds: u64,
    /// Address people use to reach this service (e.g. `https://yingji.example.cn`), for links in
    /// robot messages cut to the robots' size limits; default `http://<listen address>`.
    #[arg(long, env = "YINGJI_PUBLIC_URL")]
    public_url: Option<String>,
    /// Base-map tile URL template for the console map, e.g. an internal tile server
    /// `http://tiles.example/{z}/{x}/{y}.png`; unset: no base map (nothing is fetched from outside).
    #[arg(long, env = "YINGJI_TILE_URL")]
    tile_url: Option<String>,
    /// Attribution text shown under the base map.
    #[arg(long, env = "YINGJI_TILE_ATTRIBUTION")]
    tile_attribution: Option<String>,
    /// Bearer token a monitoring system (Prometheus) sends to read `/metrics` (and nothing else);
    /// unset: only API tokens of banner-level admins read the metrics.
    #[arg(long, env = "YINGJI_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Department and unit codes (`DDDUUU`: 3-digit GB/T 4657 机构行业编码 + 3-digit internal
    /// code) in the CAP identifiers of warnings issued here; `000000` until the bureau's codes
    /// are known.
    #[arg(long, env = "YINGJI_CAP_ISSUER_CODE", default_value = "000000", value_parser = crate::warnings::cap::IssuerCode::parse)]
    cap_issuer_code: crate::warnings::cap::IssuerCode,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Issue a token; the token is printed as the last line of output, shown only once.
    Create {
        /// User name (created if new).
        #[arg(long)]
        name: String,
        /// Role: admin, planner, operator or viewer.
        #[arg(long, value_parser = ["admin", "planner", "operator", "viewer"])]
        role: String,
        /// Jurisdiction: the 12-digit code of a region (e.g. 152523000000 for the whole banner).
        #[arg(long)]
        region: String,
        /// What the token is for.
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id (from `token list`).
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum RegionsCommand {
    /// Import an official division list (CSV: code,name,level,parent_code[,lon,lat]); all or nothing.
    Import {
        /// The CSV file.
        file: std::path::PathBuf,
    },
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.command.is_none() {
        // `serve` is the default: parse again with it appended so its flags and environment
        // variables apply.
        cli = Cli::parse_from(std::env::args_os().chain([std::ffi::OsString::from("serve")]));
    }
    init_logging(&cli.global.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("无法启动运行时：{e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("错误：{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    let mut config = Config::new(cli.global.database_url.clone());
    config.pii_key = cli.global.pii_key;
    config.pii_key_file = cli.global.pii_key_file;
    config.calendar_dir = cli.global.calendar_dir;
    config.plans_dir = cli.global.plans_dir;
    config.db = DbOptions { url: cli.global.database_url, max_connections: cli.global.db_pool_size.max(1) };
    let Some(command) = cli.command else { anyhow::bail!("no command") };
    match command {
        Command::Serve(args) => {
            config.listen = args.listen;
            config.max_body_bytes = args.max_body_bytes;
            config.max_import_bytes = args.max_import_bytes;
            config.scheduler = args.scheduler == "on";
            config.max_delivery_attempts = args.max_delivery_attempts;
            config.idempotency_ttl_hours = args.idempotency_ttl_hours;
            config.lease_seconds = args.lease_seconds;
            config.public_url = args.public_url;
            config.request_timeout = std::time::Duration::from_secs(args.request_timeout_secs);
            config.max_concurrent_requests = args.max_concurrent_requests as usize;
            config.tile_url = args.tile_url.filter(|u| !u.trim().is_empty());
            config.tile_attribution = args.tile_attribution;
            config.metrics_token = args.metrics_token.filter(|t| !t.trim().is_empty());
            config.cap_issuer_code = args.cap_issuer_code;
            serve(config, clock).await
        }
        Command::Migrate => {
            let db = app::prepare_db(&config, &clock).await?;
            if let Err(e) = crate::keys::open(&config, &db).await {
                db.close().await;
                return Err(e);
            }
            println!("数据库已迁移到最新版本 ({:?})", db.backend());
            db.close().await;
            Ok(())
        }
        // Only `serve` and `migrate` load the shipped data into an empty database: issuing a token
        // or importing regions or plans never loads the shipped plan set behind the user's back.
        Command::Token(cmd) => token(Config { seed: false, ..config }, clock, cmd).await,
        Command::Plans(cmd) => plans(Config { seed: false, ..config }, clock, cmd).await,
        Command::Pii(PiiCommand::RotateKey { new_key_file }) => {
            rotate_key(Config { seed: false, ..config }, clock, new_key_file).await
        }
        Command::User(cmd) => user(Config { seed: false, ..config }, clock, cmd).await,
        Command::Regions(RegionsCommand::Import { file }) => {
            let config = Config { seed: false, ..config };
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("读取 {} 失败：{e}", file.display()))?;
            let db = app::prepare_db(&config, &clock).await?;
            let result = regions::import::import(&db, &Actor::cli(), Timestamp(clock.now()), None, &text).await;
            db.close().await;
            match result {
                Ok(s) => {
                    println!("导入完成：{} 行，新增 {}，更新 {}，未变 {}", s.rows, s.created, s.updated, s.unchanged);
                    Ok(())
                }
                Err(e) => Err(describe(e)),
            }
        }
    }
}

async fn rotate_key(
    config: Config,
    clock: SharedClock,
    new_key_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let db = app::prepare_db(&config, &clock).await?;
    let result = rotate_key_in(&config, &db, clock, new_key_file).await;
    db.close().await;
    result
}

async fn rotate_key_in(
    config: &Config,
    db: &crate::db::Db,
    clock: SharedClock,
    new_key_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let old = crate::keys::open(config, db).await?;
    let current_file = if config.pii_key.is_some() { None } else { crate::keys::key_file(config) };
    let new_path = match (new_key_file, &current_file) {
        (Some(p), _) => p,
        (None, Some(f)) => std::path::PathBuf::from(format!("{}.new", f.display())),
        (None, None) => anyhow::bail!("密钥由 YINGJI_PII_KEY 给出：请用 --new-key-file 指定新密钥写到哪里"),
    };
    let hex = crate::personal::Cipher::generate_hex();
    crate::keys::write_key_file(&new_path, &hex)?;
    let new = crate::personal::Cipher::from_hex(&hex).map_err(|e| anyhow::anyhow!(e))?;
    let n = match crate::keys::rotate(db, &old, &new, &Actor::cli(), Timestamp(clock.now())).await {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&new_path);
            return Err(e);
        }
    };
    println!("已用新密钥（指纹 {}）重新加密 {n} 个值。", new.fingerprint());
    match current_file {
        Some(f) if f.exists() => {
            let old_path = std::path::PathBuf::from(format!("{}.old", f.display()));
            std::fs::rename(&f, &old_path)?;
            std::fs::rename(&new_path, &f)?;
            println!(
                "密钥文件 {} 已换成新密钥；旧密钥保存在 {}（确认服务正常后请销毁）。",
                f.display(),
                old_path.display()
            );
        }
        _ => println!(
            "新密钥在 {}：请在重启服务前把 YINGJI_PII_KEY / 密钥文件换成它（所有实例），旧密钥已不能启动服务。",
            new_path.display()
        ),
    }
    Ok(())
}

async fn plans(config: Config, clock: SharedClock, cmd: PlansCommand) -> anyhow::Result<()> {
    let dir = match &cmd {
        PlansCommand::Check { dir } | PlansCommand::Import { dir } => dir.clone(),
    };
    let files = match crate::plans::files::check_dir(&dir) {
        Ok(f) => f,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            anyhow::bail!("{} 处错误", errors.len());
        }
    };
    match cmd {
        PlansCommand::Check { .. } => {
            let templates = files.iter().filter(|f| f.template).count();
            println!("检查通过：{} 个预案文件，{} 个模板", files.len() - templates, templates);
            Ok(())
        }
        PlansCommand::Import { .. } => {
            let db = app::prepare_db(&config, &clock).await?;
            let result = crate::plans::files::import(&db, &Actor::cli(), Timestamp(clock.now()), &files).await;
            db.close().await;
            let s = result.map_err(describe)?;
            println!(
                "导入完成：{} 个文件，新建 {}，新版本 {}，未变 {}（跳过模板 {}）",
                s.files, s.created, s.revised, s.unchanged, s.templates
            );
            Ok(())
        }
    }
}

fn describe(e: ApiError) -> anyhow::Error {
    match e {
        ApiError::Validation { detail, errors }
        | ApiError::BadRequest { detail, errors }
        | ApiError::ValidationCapped { detail, errors, .. } => {
            let mut s = detail;
            for err in errors {
                s.push_str("\n  ");
                s.push_str(&err.message);
            }
            anyhow::anyhow!(s)
        }
        ApiError::Internal(e) => e,
        other => anyhow::anyhow!(other.problem(None).detail),
    }
}

async fn serve(config: Config, clock: SharedClock) -> anyhow::Result<()> {
    // Install the handlers before anything is announced, so an early SIGTERM is not fatal.
    let signal = shutdown_signal()?;
    let server = app::start(config, clock).await?;
    let users: i64 =
        with_db!(&server.state.db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(p).await)?;
    let mut banner = format!("yingji 已启动：http://{}  (接口说明 http://{}/api/docs)\n", server.addr, server.addr);
    if users == 0 {
        banner.push_str(&format!(
            "还没有任何用户。创建首个管理员（另开一个终端，按提示输入密码）：\n  cargo run --release -- user create --name admin --role admin --region {}\n然后在浏览器打开 http://{} 登录；接口令牌：cargo run --release -- token create --name admin --role admin --region {}\n",
            regions::BANNER_CODE,
            server.addr,
            regions::BANNER_CODE
        ));
    }
    // One write, errors ignored: a reader that closes stdout after the first line (a supervisor,
    // a test) must not make `println!` panic on the broken pipe and take the service down.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
    let trigger = server.shutdown_trigger();
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutdown signal received; finishing in-flight requests");
        let _ = trigger.send(true);
    });
    server.wait().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Registers SIGTERM and SIGINT handlers now; the returned future resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// Registers the Ctrl-C handler; the returned future resolves on it.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
