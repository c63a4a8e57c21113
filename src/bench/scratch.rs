//! A scratch database for one benchmark run: a fresh SQLite file in a directory, or, when a
//! PostgreSQL server URL is given, a fresh database on that server (created, then dropped).

use sqlx::Connection;

/// A database that exists for one run; [`Scratch::remove`] deletes it.
pub struct Scratch {
    /// The URL the service opens.
    pub url: String,
    server: Option<(String, String)>,
    file: Option<std::path::PathBuf>,
}

impl Scratch {
    /// Creates `name` afresh: a SQLite file in `dir`, or a database on the PostgreSQL server of
    /// `postgres_url` (any database on that server; the benchmark's own is created beside it).
    pub async fn create(dir: &std::path::Path, postgres_url: Option<&str>, name: &str) -> anyhow::Result<Scratch> {
        let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        match postgres_url {
            Some(base) => {
                let mut conn = sqlx::PgConnection::connect(base).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut conn).await?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
                let _ = conn.close().await;
                let head = base.rsplit_once('/').map(|(h, _)| h).unwrap_or(base);
                Ok(Scratch { url: format!("{head}/{name}"), server: Some((base.to_string(), name)), file: None })
            }
            None => {
                let path = dir.join(format!("{name}.db"));
                let s = Scratch { url: format!("sqlite://{}", path.display()), server: None, file: Some(path) };
                s.remove_file();
                Ok(s)
            }
        }
    }

    /// `PostgreSQL` or `SQLite`.
    pub fn backend(&self) -> &'static str {
        if self.server.is_some() { "PostgreSQL" } else { "SQLite" }
    }

    fn remove_file(&self) {
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }

    /// Deletes the database (call after the service using it has shut down).
    pub async fn remove(self) -> anyhow::Result<()> {
        self.remove_file();
        if let Some((base, name)) = &self.server {
            let mut conn = sqlx::PgConnection::connect(base).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await?;
            let _ = conn.close().await;
        }
        Ok(())
    }
}
