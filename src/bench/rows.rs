//! Bulk inserts for benchmark data: many rows per statement, many statements per transaction.

use chrono::NaiveDate;

use crate::db::Tx;
use crate::time::Timestamp;
use crate::with_tx;

/// A value to insert.
#[derive(Debug, Clone)]
pub enum Val {
    /// Integer.
    I(i64),
    /// Float.
    F(f64),
    /// Text.
    S(String),
    /// Boolean.
    B(bool),
    /// Date.
    D(NaiveDate),
    /// Instant.
    T(Timestamp),
    /// JSON.
    J(serde_json::Value),
    /// NULL text.
    Null,
    /// NULL date.
    NullDate,
    /// NULL number (PostgreSQL will not take a text NULL in a float column of a multi-row VALUES).
    NullF,
}

/// Inserts `rows` into `table (columns)`, in statements of at most ~30,000 bound values.
pub async fn insert(tx: &mut Tx, table: &str, columns: &[&str], rows: &[Vec<Val>]) -> Result<(), sqlx::Error> {
    let per = (30_000 / columns.len()).clamp(1, 1000);
    for chunk in rows.chunks(per) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut n = 1;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..columns.len() {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${n}"));
                n += 1;
            }
            sql.push(')');
        }
        with_tx!(tx, |c| {
            let mut q = sqlx::query(&sql);
            for row in chunk {
                for v in row {
                    q = match v {
                        Val::I(x) => q.bind(*x),
                        Val::F(x) => q.bind(*x),
                        Val::S(x) => q.bind(x.clone()),
                        Val::B(x) => q.bind(*x),
                        Val::D(x) => q.bind(*x),
                        Val::T(x) => q.bind(*x),
                        Val::J(x) => q.bind(sqlx::types::Json(x.clone())),
                        Val::Null => q.bind(Option::<String>::None),
                        Val::NullDate => q.bind(Option::<NaiveDate>::None),
                        Val::NullF => q.bind(Option::<f64>::None),
                    };
                }
            }
            q.execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// A small deterministic random generator (xorshift64*), so benchmark data is reproducible.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits() % n.max(1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.bits() >> 11) as f64 / (1u64 << 53) as f64
    }
}
