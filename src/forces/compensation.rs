//! Compensation claims after a call-up (labour, transport, supplies used, equipment wear):
//! `claimed` → `approved` → `paid`. Amounts are yuan with at most two decimals, stored as fen.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::db::{Db, Tx};
use crate::time::Timestamp;
use crate::{with_db, with_tx};

crate::vocabulary! {
    /// State of a compensation claim.
    ClaimStatus {
        Claimed = "claimed", "已申请";
        Approved = "approved", "已核准";
        Paid = "paid", "已支付";
    }
}

/// An amount of money in fen (0.01 yuan); read and shown as yuan, stored as an integer number of
/// fen. Never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, sqlx::Type)]
#[sqlx(transparent)]
pub struct Money(pub i64);

impl Money {
    /// Parses yuan with at most two decimals, 0 to 10^10.
    pub fn from_yuan(v: f64) -> Result<Money, String> {
        let fen = v * 100.0;
        if !fen.is_finite() || !(0.0..=1e12).contains(&fen) {
            return Err("金额应在 0 到 100 亿元之间".into());
        }
        if (fen - fen.round()).abs() > 1e-6 {
            return Err("金额最多两位小数".into());
        }
        Ok(Money(fen.round() as i64))
    }

    /// Yuan.
    pub fn yuan(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.yuan())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Money::from_yuan(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Money {
    fn schema_name() -> Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "number", "minimum": 0, "multipleOf": 0.01, "description": "金额（元，最多两位小数）" })
    }
}

/// Body of `POST /api/v1/callups/{id}/compensation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClaim {
    /// Labour (误工补助), yuan.
    pub labour: Money,
    /// Transport, yuan.
    pub transport: Money,
    /// Supplies used, yuan.
    pub supplies: Money,
    /// Equipment wear and loss, yuan.
    pub equipment_wear: Money,
    /// Remarks.
    #[serde(default)]
    pub note: Option<String>,
}

/// Body of `POST /api/v1/callups/{id}/compensation/pay` (optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// Payment voucher or transfer reference.
    #[serde(default)]
    pub payment_ref: Option<String>,
}

/// A claim as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimRow {
    /// Id.
    pub id: i64,
    /// Call-up.
    pub callup_id: i64,
    /// Labour, fen.
    pub labour_fen: i64,
    /// Transport, fen.
    pub transport_fen: i64,
    /// Supplies, fen.
    pub supplies_fen: i64,
    /// Equipment wear, fen.
    pub equipment_fen: i64,
    /// Remarks.
    pub note: Option<String>,
    /// State.
    #[sqlx(try_from = "String")]
    pub status: ClaimStatus,
    /// Who claimed.
    pub claimed_by: String,
    /// When.
    pub claimed_at: Timestamp,
    /// Who approved.
    pub approved_by: Option<String>,
    /// When.
    pub approved_at: Option<Timestamp>,
    /// Who recorded the payment.
    pub paid_by: Option<String>,
    /// When.
    pub paid_at: Option<Timestamp>,
    /// Payment reference.
    pub payment_ref: Option<String>,
}

/// A claim as the API shows it (amounts in yuan).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Claim {
    /// Call-up.
    pub callup_id: i64,
    /// Labour, yuan.
    pub labour: Money,
    /// Transport, yuan.
    pub transport: Money,
    /// Supplies used, yuan.
    pub supplies: Money,
    /// Equipment wear, yuan.
    pub equipment_wear: Money,
    /// Sum, yuan.
    pub total: Money,
    /// Remarks.
    pub note: Option<String>,
    /// State.
    pub status: ClaimStatus,
    /// Its Chinese label.
    pub status_label: &'static str,
    /// Who claimed.
    pub claimed_by: String,
    /// When.
    pub claimed_at: Timestamp,
    /// Who approved.
    pub approved_by: Option<String>,
    /// When.
    pub approved_at: Option<Timestamp>,
    /// Who recorded the payment.
    pub paid_by: Option<String>,
    /// When.
    pub paid_at: Option<Timestamp>,
    /// Payment reference.
    pub payment_ref: Option<String>,
}

impl From<&ClaimRow> for Claim {
    fn from(r: &ClaimRow) -> Claim {
        Claim {
            callup_id: r.callup_id,
            labour: Money(r.labour_fen),
            transport: Money(r.transport_fen),
            supplies: Money(r.supplies_fen),
            equipment_wear: Money(r.equipment_fen),
            total: Money(r.labour_fen + r.transport_fen + r.supplies_fen + r.equipment_fen),
            note: r.note.clone(),
            status: r.status,
            status_label: r.status.label(),
            claimed_by: r.claimed_by.clone(),
            claimed_at: r.claimed_at,
            approved_by: r.approved_by.clone(),
            approved_at: r.approved_at,
            paid_by: r.paid_by.clone(),
            paid_at: r.paid_at,
            payment_ref: r.payment_ref.clone(),
        }
    }
}

const SELECT: &str = "SELECT id, callup_id, labour_fen, transport_fen, supplies_fen, equipment_fen, note, status,
    claimed_by, claimed_at, approved_by, approved_at, paid_by, paid_at, payment_ref FROM compensation_claims";

/// The claim of a call-up.
pub async fn get(db: &Db, callup_id: i64) -> Result<Option<ClaimRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE callup_id = $1");
    with_db!(db, |p| sqlx::query_as::<_, ClaimRow>(&sql).bind(callup_id).fetch_optional(p).await)
}

/// The claim of a call-up, inside a transaction.
pub async fn get_tx(tx: &mut Tx, callup_id: i64) -> Result<Option<ClaimRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE callup_id = $1");
    with_tx!(tx, |c| sqlx::query_as::<_, ClaimRow>(&sql).bind(callup_id).fetch_optional(c).await)
}

/// Inserts a claim.
pub async fn insert(tx: &mut Tx, r: &ClaimRow) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO compensation_claims (callup_id, labour_fen, transport_fen, supplies_fen, equipment_fen, note, status,
                claimed_by, claimed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(r.callup_id)
        .bind(r.labour_fen)
        .bind(r.transport_fen)
        .bind(r.supplies_fen)
        .bind(r.equipment_fen)
        .bind(&r.note)
        .bind(r.status.as_str())
        .bind(&r.claimed_by)
        .bind(r.claimed_at)
        .execute(c)
        .await
        .map(|_| ())
    })
}

/// The compensation-claim lifecycle (one claim per call-up, keyed by it).
pub const CLAIM: crate::transition::Lifecycle =
    crate::transition::Lifecycle::new("compensation_claims", "补偿申请").keyed_by("callup_id");

/// Moves a claim from `from` to `r.status` (the [`transition!`](crate::transition!) that decides)
/// and writes its state columns; a claim no longer in `from` is a conflict.
pub async fn update_state(
    tx: &mut Tx,
    r: &ClaimRow,
    from: ClaimStatus,
) -> Result<(), crate::transition::TransitionError> {
    crate::transition!(tx, CLAIM, r.callup_id, from [from.as_str()] => r.status.as_str())?;
    with_tx!(tx, |c| {
        sqlx::query(
            "UPDATE compensation_claims SET status = $2, approved_by = $3, approved_at = $4, paid_by = $5, paid_at = $6,
                payment_ref = $7 WHERE callup_id = $1 AND status = $8",
        )
        .bind(r.callup_id)
        .bind(r.status.as_str())
        .bind(&r.approved_by)
        .bind(r.approved_at)
        .bind(&r.paid_by)
        .bind(r.paid_at)
        .bind(&r.payment_ref)
        .bind(r.status.as_str())
        .execute(c)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_yuan_with_two_decimals() {
        assert_eq!(Money::from_yuan(1200.5), Ok(Money(120_050)));
        assert_eq!(Money::from_yuan(0.1 + 0.2), Ok(Money(30)));
        assert!(Money::from_yuan(1.001).is_err());
        assert!(Money::from_yuan(-1.0).is_err());
        assert!(Money::from_yuan(f64::NAN).is_err());
        assert_eq!(serde_json::to_string(&Money(158_075)).unwrap(), "1580.75");
        assert_eq!(ClaimStatus::parse("已核准"), Some(ClaimStatus::Approved));
    }
}
