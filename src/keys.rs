//! The personal-data key's life: where its file lives (beside the SQLite database file, never the
//! working directory), the fingerprint stored at first start that stops a service or command
//! started with another key, the move of data written by earlier versions to the current format,
//! and rotation to a new key (`yingji pii rotate-key`), each in one transaction.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};

use crate::app::Config;
use crate::audit::{self, Actor, Change};
use crate::db::{Db, Tx};
use crate::personal::{Cipher, Field};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

/// Storage format written by this version (see [`crate::personal`]).
pub const FORMAT: i64 = 2;

/// Every encrypted column: table, its key column, column, and the field bound into it.
const COLUMNS: &[(&str, &str, &str, Field)] = &[
    ("depots", "id", "phone_enc", Field::DEPOT_PHONE),
    ("teams", "id", "leader_phone", Field::TEAM_LEADER_PHONE),
    ("teams", "id", "contact_phone", Field::TEAM_CONTACT_PHONE),
    ("members", "id", "id_number", Field::MEMBER_ID_NUMBER),
    ("members", "id", "phone", Field::MEMBER_PHONE),
    ("channels", "id", "url_enc", Field::CHANNEL_URL),
    ("channels", "id", "secret_enc", Field::CHANNEL_SECRET),
    ("person_keys", "member_id", "key_enc", Field::PERSON_KEY),
];

/// The key file that belongs to a database: `yingji.db` → `yingji.db.key` beside it. None for
/// PostgreSQL, which has no file: there the key must be given (`YINGJI_PII_KEY` or
/// `--pii-key-file`), the same on every instance.
pub fn default_key_file(database_url: &str) -> Option<PathBuf> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        return None;
    }
    let path =
        database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:")).unwrap_or(database_url);
    let path = path.split('?').next().unwrap_or(path);
    Some(PathBuf::from(format!("{path}.key")))
}

/// The key file this configuration uses (None when the key is given directly or cannot be
/// placed).
pub fn key_file(config: &Config) -> Option<PathBuf> {
    config.pii_key_file.clone().or_else(|| default_key_file(&config.db.url))
}

/// The fingerprint stored in the database, if any.
pub async fn stored_fingerprint(db: &Db) -> anyhow::Result<Option<String>> {
    Ok(with_db!(db, |p| sqlx::query_scalar("SELECT fingerprint FROM pii_key WHERE id = 1").fetch_optional(p).await)?)
}

/// Loads the key for a migrated database and checks it against the stored fingerprint. On the
/// first start of this format, moves any data written by earlier versions to it (which fails,
/// changing nothing, when the key does not decrypt that data) and stores the fingerprint. A key
/// file is created only for a database that has none yet.
pub async fn open(config: &Config, db: &Db) -> anyhow::Result<Cipher> {
    let stored = stored_fingerprint(db).await?;
    let (cipher, source) = load(config, stored.as_deref())?;
    if let Some(fp) = &stored {
        return check(fp, &cipher, &source);
    }
    let mut tx = db.begin().await?;
    let moved = reencrypt(&mut tx, &cipher, &cipher).await.map_err(|e| {
        anyhow!(
            "数据库中已有个人信息，但{source}无法解密它们（{e}）。这不是这些数据的密钥：请用原来的密钥启动 \
             （YINGJI_PII_KEY 或 --pii-key-file 指向原密钥文件）；什么也没有改动"
        )
    })?;
    with_tx!(&mut tx, |c| sqlx::query(
        "INSERT INTO pii_key (id, fingerprint, format) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING"
    )
    .bind(cipher.fingerprint())
    .bind(FORMAT)
    .execute(c)
    .await
    .map(|_| ()))?;
    tx.commit().await?;
    if moved > 0 {
        tracing::info!(
            values = moved,
            "personal data moved to storage format 2 (HKDF subkeys, column-bound AES-GCM, HMAC index)"
        );
    }
    // Another instance may have started at the same moment with its own key.
    let fp = stored_fingerprint(db).await?.context("personal-data key fingerprint missing after first start")?;
    check(&fp, &cipher, &source)
}

fn check(stored: &str, cipher: &Cipher, source: &str) -> anyhow::Result<Cipher> {
    if stored == cipher.fingerprint() {
        return Ok(cipher.clone());
    }
    bail!(
        "个人信息密钥与数据库不符：数据库中的身份证号和电话由指纹为 {stored} 的密钥加密，而{source}的指纹为 {}。\
         拒绝启动，以免写入无法解密的数据。请用原来的密钥文件启动（YINGJI_PII_KEY_FILE / --pii-key-file，\
         或 YINGJI_PII_KEY）；要更换密钥，请用原密钥运行 `yingji pii rotate-key`。",
        cipher.fingerprint()
    )
}

/// Reads the configured key. Creates the key file with a new random key only when the database
/// has no key yet (`stored` is None).
fn load(config: &Config, stored: Option<&str>) -> anyhow::Result<(Cipher, String)> {
    if let Some(k) = &config.pii_key {
        return Ok((
            Cipher::from_hex(k).map_err(|e| anyhow!("YINGJI_PII_KEY：{e}"))?,
            "YINGJI_PII_KEY 给出的密钥".into(),
        ));
    }
    let Some(path) = key_file(config) else {
        bail!(
            "PostgreSQL 数据库须指定个人信息密钥：设置 YINGJI_PII_KEY，或用 --pii-key-file / YINGJI_PII_KEY_FILE \
             指向密钥文件（共用同一数据库的所有实例须使用同一密钥）"
        );
    };
    let source = format!("密钥文件 {}", path.display());
    match std::fs::read_to_string(&path) {
        Ok(k) => Ok((Cipher::from_hex(&k).map_err(|e| anyhow!("{}: {e}", path.display()))?, source)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(fp) = stored {
                bail!(
                    "找不到个人信息密钥文件 {}。数据库中的身份证号和电话由指纹为 {fp} 的密钥加密：请把原密钥文件放回该位置，\
                     或用 --pii-key-file / YINGJI_PII_KEY_FILE 指向它。拒绝启动，不会生成新密钥。",
                    path.display()
                );
            }
            let k = Cipher::generate_hex();
            write_key_file(&path, &k)?;
            tracing::warn!(path = %path.display(), "created a new personal-data key file; back it up: without it, ID numbers and phones cannot be read");
            Ok((Cipher::from_hex(&k).map_err(|e| anyhow!(e))?, source))
        }
        Err(e) => Err(anyhow!("无法读取密钥文件 {}：{e}", path.display())),
    }
}

/// Writes a new key file (mode 0600), refusing to overwrite one.
pub fn write_key_file(path: &std::path::Path, hex_key: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| anyhow!("无法创建密钥文件 {}：{e}", path.display()))?;
    f.write_all(hex_key.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Re-encrypts every encrypted value (and recomputes the blind index) from `old` to `new` inside
/// `tx`. Values already in the current format under `old` and values in the earlier format are
/// both read. Fails, naming the first unreadable value, when `old` does not decrypt everything.
/// Returns how many values were rewritten.
pub async fn reencrypt(tx: &mut Tx, old: &Cipher, new: &Cipher) -> Result<usize, String> {
    let mut n = 0;
    for (table, id_col, column, field) in COLUMNS {
        let select = format!("SELECT {id_col}, {column} FROM {table} WHERE {column} IS NOT NULL");
        let rows: Vec<(i64, String)> = with_tx!(&mut *tx, |c| sqlx::query_as(&select).fetch_all(c).await)
            .map_err(|e| format!("读取 {table}.{column} 失败：{e}"))?;
        for (id, value) in rows {
            let plain = old
                .decrypt(*field, &value)
                .or_else(|| old.decrypt_v1(&value))
                .ok_or_else(|| format!("{table}.{column}（{id_col} = {id}）无法解密"))?;
            let sealed = new.encrypt(*field, &plain);
            let index = (*field == Field::MEMBER_ID_NUMBER).then(|| new.blind_index(&plain));
            let update = match index {
                Some(_) => format!("UPDATE {table} SET {column} = $1, id_index = $3 WHERE {id_col} = $2"),
                None => format!("UPDATE {table} SET {column} = $1 WHERE {id_col} = $2"),
            };
            with_tx!(&mut *tx, |c| {
                let q = sqlx::query(&update).bind(&sealed).bind(id);
                match &index {
                    Some(i) => q.bind(i).execute(c).await.map(|_| ()),
                    None => q.execute(c).await.map(|_| ()),
                }
            })
            .map_err(|e| format!("写入 {table}.{column} 失败：{e}"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Re-encrypts everything under `new` in one transaction, records the new fingerprint and audits
/// the rotation. `old` must be the database's current key.
pub async fn rotate(db: &Db, old: &Cipher, new: &Cipher, actor: &Actor, now: Timestamp) -> anyhow::Result<usize> {
    match stored_fingerprint(db).await? {
        Some(fp) if fp == old.fingerprint() => {}
        Some(fp) => bail!("当前密钥（指纹 {}）不是数据库的密钥（指纹 {fp}），无法轮换", old.fingerprint()),
        None => bail!("数据库尚未记录密钥指纹：请先用当前密钥启动一次服务或运行 yingji migrate"),
    }
    let mut tx = db.begin().await?;
    let n = reencrypt(&mut tx, old, new).await.map_err(|e| anyhow!("轮换失败，未做任何改动：{e}"))?;
    with_tx!(&mut tx, |c| sqlx::query("UPDATE pii_key SET fingerprint = $1, format = $2 WHERE id = 1")
        .bind(new.fingerprint())
        .bind(FORMAT)
        .execute(c)
        .await
        .map(|_| ()))?;
    audit::record(
        &mut tx,
        actor,
        now,
        Change {
            action: "rotate-key",
            entity_type: "pii_key",
            entity_id: "1",
            region_code: None,
            before: Some(serde_json::json!({ "fingerprint": old.fingerprint() })),
            after: Some(serde_json::json!({ "fingerprint": new.fingerprint(), "values": n })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(n)
}
