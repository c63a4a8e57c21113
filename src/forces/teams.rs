//! Teams: what the API accepts and shows, and creating and editing them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use super::idnumber::Phone;
use super::personal::Disclosure;
use super::{Equipment, FilingStatus, OrgType, SpecialtyGrade, audit_json, check_specialties, opt_text, store, text};
use crate::audit::{self, Actor, Change};
use crate::db::{Db, Tx};
use crate::error::ApiError;
use crate::personal::Cipher;
use crate::regions::{RegionCode, check_lon_lat};
use crate::time::Timestamp;

/// A team as stored (phones encrypted).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamRow {
    /// Row id.
    pub id: i64,
    /// Unique code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Organisation type.
    #[sqlx(try_from = "String")]
    pub org_type: OrgType,
    /// Civil-affairs registration number.
    pub registration_no: Option<String>,
    /// Home region.
    pub region_code: String,
    /// Base longitude.
    pub lon: f64,
    /// Base latitude.
    pub lat: f64,
    /// Equipment list.
    pub equipment: Json<Vec<Equipment>>,
    /// Leader's name.
    pub leader_name: Option<String>,
    /// Leader's phone, encrypted.
    pub leader_phone: Option<String>,
    /// Contact's name.
    pub contact_name: Option<String>,
    /// Contact's phone, encrypted.
    pub contact_phone: Option<String>,
    /// Filing state.
    #[sqlx(try_from = "String")]
    pub filing_status: FilingStatus,
    /// Reason of the last rejection, suspension or revocation.
    pub status_reason: Option<String>,
    /// Who submitted the filing.
    pub submitted_by: String,
    /// When.
    pub submitted_at: Timestamp,
    /// Who made the last filing decision.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// Who approved the filing (kept through later suspensions).
    pub approved_by: Option<String>,
    /// When.
    pub approved_at: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// A leader or contact person as shown (phone masked unless revealed).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Contact {
    /// Name.
    pub name: String,
    /// Phone (masked unless revealed).
    pub phone: Option<String>,
}

/// A team as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Team {
    /// Unique code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Organisation type.
    pub org_type: OrgType,
    /// Its Chinese label.
    pub org_type_label: &'static str,
    /// Civil-affairs registration number, where it has one.
    pub registration_no: Option<String>,
    /// Home region (12-digit code).
    pub region_code: String,
    /// Base longitude (WGS84).
    pub lon: f64,
    /// Base latitude (WGS84).
    pub lat: f64,
    /// Specialties with their grades.
    pub specialties: Vec<SpecialtyGrade>,
    /// Equipment.
    pub equipment: Vec<Equipment>,
    /// Leader (personal information).
    pub leader: Option<Contact>,
    /// Contact person (personal information).
    pub contact: Option<Contact>,
    /// Filing state.
    pub filing_status: FilingStatus,
    /// Its Chinese label.
    pub filing_status_label: &'static str,
    /// Reason of the last rejection, suspension or revocation.
    pub status_reason: Option<String>,
    /// Who submitted.
    pub submitted_by: String,
    /// When.
    pub submitted_at: Timestamp,
    /// Who made the last filing decision (e.g. approved it).
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// Who approved the filing (kept through later suspensions).
    pub approved_by: Option<String>,
    /// When.
    pub approved_at: Option<Timestamp>,
    /// Whether phones are shown in full in this response.
    pub personal_revealed: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

impl Team {
    /// The view of a stored team.
    pub fn view(row: &TeamRow, specialties: Vec<SpecialtyGrade>, cipher: &Cipher, d: Disclosure) -> Team {
        let person = |name: &Option<String>, phone: &Option<String>, column| {
            name.as_ref().map(|n| Contact { name: n.clone(), phone: d.phone(cipher, column, phone.as_deref()) })
        };
        Team {
            code: row.code.clone(),
            name: row.name.clone(),
            org_type: row.org_type,
            org_type_label: row.org_type.label(),
            registration_no: row.registration_no.clone(),
            region_code: row.region_code.clone(),
            lon: row.lon,
            lat: row.lat,
            specialties,
            equipment: row.equipment.0.clone(),
            leader: person(&row.leader_name, &row.leader_phone, crate::personal::Field::TEAM_LEADER_PHONE),
            contact: person(&row.contact_name, &row.contact_phone, crate::personal::Field::TEAM_CONTACT_PHONE),
            filing_status: row.filing_status,
            filing_status_label: row.filing_status.label(),
            status_reason: row.status_reason.clone(),
            submitted_by: row.submitted_by.clone(),
            submitted_at: row.submitted_at,
            decided_by: row.decided_by.clone(),
            decided_at: row.decided_at,
            approved_by: row.approved_by.clone(),
            approved_at: row.approved_at,
            personal_revealed: d.reveal,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A leader or contact as submitted.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// Name.
    #[schemars(length(min = 1, max = 50), regex(pattern = r"\S"))]
    pub name: String,
    /// Phone. When editing, leaving it out keeps the stored phone (clients only ever see it
    /// masked); `null` removes it.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schemars(with = "Option<Phone>")]
    pub phone: Option<Option<Phone>>,
}

/// Body of `POST /api/v1/teams` (and `PUT /api/v1/teams/{code}`, where `code` must stay the same).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamInput {
    /// Unique code (letters, digits, `-`, `_`; up to 40).
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,40}$"))]
    pub code: String,
    /// Name.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"\S"))]
    pub name: String,
    /// Organisation type.
    pub org_type: OrgType,
    /// Civil-affairs registration number (统一社会信用代码 or 登记证号), where it has one.
    #[serde(default)]
    #[schemars(length(max = 60))]
    pub registration_no: Option<String>,
    /// Home region.
    pub region_code: RegionCode,
    /// Base longitude (WGS84).
    #[schemars(range(min = -180, max = 180))]
    pub lon: f64,
    /// Base latitude (WGS84).
    #[schemars(range(min = -90, max = 90))]
    pub lat: f64,
    /// Specialties, each with its grade 1/2/3 where graded.
    #[serde(default)]
    pub specialties: Vec<SpecialtyGrade>,
    /// Equipment.
    #[serde(default)]
    pub equipment: Vec<Equipment>,
    /// Leader.
    #[serde(default)]
    pub leader: Option<ContactInput>,
    /// Contact person.
    #[serde(default)]
    pub contact: Option<ContactInput>,
    /// Day the filing was submitted, when it was received on paper (default: now). Not in the
    /// future; only on create (`POST /api/v1/teams`), not on edits.
    #[serde(default)]
    pub submitted_on: Option<chrono::NaiveDate>,
}

/// Checks a team code.
pub fn check_code(code: &str) -> Result<String, String> {
    let c = code.trim();
    if c.is_empty() || c.len() > 40 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("队伍编码「{c}」无效：应为 1–40 位字母、数字、- 或 _"));
    }
    Ok(c.to_string())
}

/// Validates a team input into the row to store (phones encrypted). `existing` is the stored
/// row when editing; filing fields are taken from it.
pub fn to_row(
    input: &TeamInput,
    cipher: &Cipher,
    actor: &Actor,
    now: Timestamp,
    existing: Option<&TeamRow>,
) -> Result<TeamRow, ApiError> {
    let code = check_code(&input.code).map_err(|m| ApiError::invalid("code", m))?;
    check_lon_lat(input.lon, input.lat).map_err(|m| ApiError::invalid("lon", m))?;
    check_specialties(&input.specialties).map_err(|m| ApiError::invalid("specialties", m))?;
    for (i, e) in input.equipment.iter().enumerate() {
        text(&format!("equipment[{i}].name"), &e.name, 100)?;
        if e.quantity.is_some_and(|q| q < 0) {
            return Err(ApiError::invalid(format!("equipment[{i}].quantity"), "数量不能为负"));
        }
    }
    let person = |field: &str,
                  column: crate::personal::Field,
                  c: &Option<ContactInput>,
                  stored: Option<&String>|
     -> Result<(Option<String>, Option<String>), ApiError> {
        match c {
            None => Ok((None, None)),
            Some(c) => Ok((
                Some(text(&format!("{field}.name"), &c.name, 50)?),
                match &c.phone {
                    Some(Some(p)) => Some(cipher.encrypt(column, p.as_str())),
                    Some(None) => None,
                    None => stored.cloned(),
                },
            )),
        }
    };
    let (leader_name, leader_phone) = person(
        "leader",
        crate::personal::Field::TEAM_LEADER_PHONE,
        &input.leader,
        existing.and_then(|e| e.leader_phone.as_ref()),
    )?;
    let (contact_name, contact_phone) = person(
        "contact",
        crate::personal::Field::TEAM_CONTACT_PHONE,
        &input.contact,
        existing.and_then(|e| e.contact_phone.as_ref()),
    )?;
    let base = existing.cloned();
    Ok(TeamRow {
        id: base.as_ref().map_or(0, |b| b.id),
        code,
        name: text("name", &input.name, 100)?,
        org_type: input.org_type,
        registration_no: opt_text("registration_no", input.registration_no.as_deref(), 60)?,
        region_code: input.region_code.to_string(),
        lon: input.lon,
        lat: input.lat,
        equipment: Json(
            input
                .equipment
                .iter()
                .map(|e| Equipment { name: e.name.trim().to_string(), quantity: e.quantity })
                .collect(),
        ),
        leader_name,
        leader_phone,
        contact_name,
        contact_phone,
        filing_status: base.as_ref().map_or(FilingStatus::Submitted, |b| b.filing_status),
        status_reason: base.as_ref().and_then(|b| b.status_reason.clone()),
        submitted_by: base.as_ref().map_or_else(|| actor.name.clone(), |b| b.submitted_by.clone()),
        submitted_at: base.as_ref().map_or(now, |b| b.submitted_at),
        decided_by: base.as_ref().and_then(|b| b.decided_by.clone()),
        decided_at: base.as_ref().and_then(|b| b.decided_at),
        approved_by: base.as_ref().and_then(|b| b.approved_by.clone()),
        approved_at: base.as_ref().and_then(|b| b.approved_at),
        created_at: base.as_ref().map_or(now, |b| b.created_at),
        updated_at: now,
    })
}

/// Makes sure a region exists (inside a transaction).
pub async fn require_region_exists(tx: &mut Tx, code: &str) -> Result<(), ApiError> {
    match crate::regions::store::get_tx(tx, code).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid("region_code", format!("区划 {code} 不存在"))),
    }
}

/// Inserts a new team (status `submitted`) with its specialties and audits it.
pub async fn create(
    tx: &mut Tx,
    cipher: &Cipher,
    actor: &Actor,
    now: Timestamp,
    row: TeamRow,
    specialties: &[SpecialtyGrade],
    action: &str,
) -> Result<TeamRow, ApiError> {
    require_region_exists(tx, &row.region_code).await?;
    let id = match store::insert(tx, &row).await {
        Ok(id) => id,
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!("队伍编码 {} 已存在", row.code)));
        }
        Err(e) => return Err(e.into()),
    };
    let row = TeamRow { id, ..row };
    store::set_specialties(tx, id, specialties).await?;
    let after = Team::view(&row, specialties.to_vec(), cipher, Disclosure::MASKED);
    audit_team(tx, actor, now, action, &row, None, Some(&after)).await?;
    Ok(row)
}

/// Writes an edited team (not its filing state) with its specialties and audits the change.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    tx: &mut Tx,
    cipher: &Cipher,
    actor: &Actor,
    now: Timestamp,
    before: &TeamRow,
    row: &TeamRow,
    specialties: &[SpecialtyGrade],
    action: &str,
) -> Result<(), ApiError> {
    require_region_exists(tx, &row.region_code).await?;
    let old_specs = store::specialties_tx(tx, before.id).await?;
    store::update(tx, row, before.filing_status).await?;
    store::set_specialties(tx, row.id, specialties).await?;
    let b = Team::view(before, old_specs, cipher, Disclosure::MASKED);
    let a = Team::view(row, specialties.to_vec(), cipher, Disclosure::MASKED);
    audit_team(tx, actor, now, action, row, Some(&b), Some(&a)).await
}

/// Writes an audit row for a team (views are always masked).
pub async fn audit_team(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    action: &str,
    row: &TeamRow,
    before: Option<&Team>,
    after: Option<&Team>,
) -> Result<(), ApiError> {
    audit::record(
        tx,
        actor,
        now,
        Change {
            action,
            entity_type: "team",
            entity_id: &row.code,
            region_code: Some(&row.region_code),
            before: before.map(audit_json).transpose()?,
            after: after.map(audit_json).transpose()?,
        },
    )
    .await?;
    Ok(())
}

/// Loads a team by code, or 404.
pub async fn load(db: &Db, code: &str) -> Result<TeamRow, ApiError> {
    store::get(db, code).await?.ok_or_else(|| ApiError::NotFound(format!("队伍 {code} 不存在")))
}

/// Loads a team by code inside a transaction, or 404.
pub async fn load_tx(tx: &mut Tx, code: &str) -> Result<TeamRow, ApiError> {
    store::get_tx(tx, code).await?.ok_or_else(|| ApiError::NotFound(format!("队伍 {code} 不存在")))
}
