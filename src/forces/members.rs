//! Members: name, ID number and phone (encrypted), skills, certificates, insurance, status.
//! Members are retired, never deleted; temporary volunteers of one call-up are anonymised when it
//! closes (see [`super::callups`]).

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::idnumber::{IdNumber, Phone};
use super::personal::Disclosure;
use super::{MemberStatus, audit_json, member_store, text};
use crate::audit::{self, Actor, Change};
use crate::db::Tx;
use crate::error::ApiError;
use crate::personal::{Cipher, Field, PersonKey};
use crate::time::{LOCAL_TZ, Timestamp};
use crate::vocab::Specialty;
use crate::with_tx;

/// A member as stored (ID number and phone encrypted; None once anonymised).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    /// Row id.
    pub id: i64,
    /// Team id.
    pub team_id: i64,
    /// Team code.
    pub team_code: String,
    /// The team's region.
    pub region_code: String,
    /// Name.
    pub name: String,
    /// ID number, encrypted.
    pub id_number: Option<String>,
    /// Keyed hash of the ID number.
    pub id_index: Option<String>,
    /// Phone, encrypted.
    pub phone: Option<String>,
    /// Status.
    #[sqlx(try_from = "String")]
    pub status: MemberStatus,
    /// Call-up this person was collected for only (temporary volunteer).
    pub temp_callup_id: Option<i64>,
    /// When the personal data was erased.
    pub anonymised_at: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

crate::vocabulary! {
    /// Where a certificate stands in a member's history.
    CertificateStatus {
        Active = "active", "有效记录";
        Renewed = "renewed", "已换证";
        Revoked = "revoked", "已注销";
    }
}

// The vocabulary macro defines the enum, so the default cannot be derived there.
#[allow(clippy::derivable_impls)]
impl Default for CertificateStatus {
    fn default() -> Self {
        CertificateStatus::Active
    }
}

/// A certificate a member holds (or held: certificates are kept as a history; a renewal adds one
/// and marks the old one `renewed`, a revocation marks it `revoked`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// Kind, e.g. 红十字救护员证.
    pub kind: String,
    /// Certificate number (one per member).
    pub number: String,
    /// Issue date.
    pub issued: NaiveDate,
    /// Expiry date, when it expires.
    #[serde(default)]
    pub expires: Option<NaiveDate>,
    /// `active`, `renewed` (a newer certificate replaced it) or `revoked` (read-only).
    #[serde(default, skip_deserializing)]
    pub status: CertificateStatus,
    /// Number of the certificate that renewed it (read-only).
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub renewed_by: Option<String>,
    /// Why it was revoked (read-only).
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
}

impl Certificate {
    /// A new, active certificate.
    pub fn new(kind: String, number: String, issued: NaiveDate, expires: Option<NaiveDate>) -> Certificate {
        Certificate {
            kind,
            number,
            issued,
            expires,
            status: CertificateStatus::Active,
            renewed_by: None,
            revoked_reason: None,
        }
    }

    /// Whether the certificate is valid on a day (issued, not expired, not revoked).
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        self.status != CertificateStatus::Revoked && self.issued <= day && self.expires.is_none_or(|e| day <= e)
    }
}

/// A personal accident insurance policy (应对法 art. 40).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Insurance {
    /// Insurer.
    pub insurer: String,
    /// Policy number.
    pub policy_number: String,
    /// First day covered.
    pub start: NaiveDate,
    /// Last day covered.
    pub end: NaiveDate,
}

impl Insurance {
    /// Whether the policy covers the local (Asia/Shanghai) day of `at`.
    pub fn covers(&self, at: Timestamp) -> bool {
        let day = local_day(at);
        self.start <= day && day <= self.end
    }
}

/// The Asia/Shanghai calendar day of an instant (insurance and certificates run by local day).
pub fn local_day(at: Timestamp) -> NaiveDate {
    at.0.with_timezone(&LOCAL_TZ).date_naive()
}

/// Skills, certificates and insurance of a member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details {
    /// Specialties.
    pub skills: Vec<Specialty>,
    /// Certificates.
    pub certificates: Vec<Certificate>,
    /// Policies.
    pub insurance: Vec<Insurance>,
}

/// A member as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Member {
    /// Id.
    pub id: i64,
    /// Team code.
    pub team_code: String,
    /// The team's region.
    pub region_code: String,
    /// Name.
    pub name: String,
    /// ID number: masked (`1525**********1234`) unless revealed; null once erased.
    pub id_number: Option<String>,
    /// Phone: masked (`138****5678`) unless revealed.
    pub phone: Option<String>,
    /// Whether ID number and phone are shown in full in this response.
    pub personal_revealed: bool,
    /// Specialties the member holds.
    pub skills: Vec<Specialty>,
    /// Certificates.
    pub certificates: Vec<Certificate>,
    /// Insurance policies.
    pub insurance: Vec<Insurance>,
    /// Whether a policy covers today (Asia/Shanghai).
    pub insured_today: bool,
    /// Whether at least one certificate is valid today (issued, not expired).
    pub certified_today: bool,
    /// Status.
    pub status: MemberStatus,
    /// Its Chinese label.
    pub status_label: &'static str,
    /// The call-up this temporary volunteer was collected for.
    pub temporary_for_callup: Option<i64>,
    /// When personal data was erased (temporary volunteers after their call-up).
    pub anonymised_at: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

impl Member {
    /// The view of a stored member.
    pub fn view(row: &MemberRow, d: Details, cipher: &Cipher, disclosure: Disclosure, now: Timestamp) -> Member {
        Member {
            id: row.id,
            team_code: row.team_code.clone(),
            region_code: row.region_code.clone(),
            name: row.name.clone(),
            id_number: disclosure.id_number(cipher, row.id_number.as_deref()),
            phone: disclosure.phone(cipher, Field::MEMBER_PHONE, row.phone.as_deref()),
            personal_revealed: disclosure.reveal,
            insured_today: d.insurance.iter().any(|i| i.covers(now)),
            certified_today: d.certificates.iter().any(|c| c.valid_on(local_day(now))),
            skills: d.skills,
            certificates: d.certificates,
            insurance: d.insurance,
            status: row.status,
            status_label: row.status.label(),
            temporary_for_callup: row.temp_callup_id,
            anonymised_at: row.anonymised_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Body of `POST /api/v1/teams/{code}/members`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// Name.
    pub name: String,
    /// 18-character ID-card number (GB 11643 check digit).
    pub id_number: IdNumber,
    /// Phone.
    #[serde(default)]
    pub phone: Option<Phone>,
    /// Specialties the member holds.
    #[serde(default)]
    pub skills: Vec<Specialty>,
    /// Certificates.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// Insurance policies.
    #[serde(default)]
    pub insurance: Vec<Insurance>,
    /// `available` (default) or `unavailable`.
    #[serde(default)]
    pub status: Option<MemberStatus>,
    /// Collected only for this call-up (a temporary volunteer): erased when it closes unless a
    /// retention assessment is recorded on the call-up.
    #[serde(default)]
    pub temporary_for_callup: Option<i64>,
}

/// Body of `PATCH /api/v1/members/{id}`: any subset. `status: "retired"` retires the member
/// (final); `deployed` is set only by call-ups.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    /// Name.
    pub name: Option<String>,
    /// ID number.
    pub id_number: Option<IdNumber>,
    /// Phone (null removes it).
    #[serde(default, deserialize_with = "super::double_option")]
    #[schemars(with = "Option<Phone>")]
    pub phone: Option<Option<Phone>>,
    /// Replaces the skills.
    pub skills: Option<Vec<Specialty>>,
    /// Adds certificates, or corrects one with the same number; never removes one (certificates
    /// are a history: renew or revoke one through `/api/v1/members/{id}/certificates`).
    pub certificates: Option<Vec<Certificate>>,
    /// Replaces the insurance policies.
    pub insurance: Option<Vec<Insurance>>,
    /// New status: `available`, `unavailable` or `retired`.
    pub status: Option<MemberStatus>,
}

/// Validates and normalises details (trimmed, deduplicated skills, sane dates).
pub fn check_details(skills: &[Specialty], certs: &[Certificate], ins: &[Insurance]) -> Result<Details, ApiError> {
    let mut s: Vec<Specialty> = Vec::new();
    for k in skills {
        if !s.contains(k) {
            s.push(*k);
        }
    }
    let mut certificates = Vec::new();
    for (i, c) in certs.iter().enumerate() {
        let kind = text(&format!("certificates[{i}].kind"), &c.kind, 60)?;
        let number = text(&format!("certificates[{i}].number"), &c.number, 60)?;
        if c.expires.is_some_and(|e| e < c.issued) {
            return Err(ApiError::invalid(format!("certificates[{i}].expires"), "有效期不能早于发证日期"));
        }
        if certificates.iter().any(|o: &Certificate| o.number == number) {
            return Err(ApiError::invalid(format!("certificates[{i}].number"), "证书编号重复"));
        }
        certificates.push(Certificate::new(kind, number, c.issued, c.expires));
    }
    let mut insurance: Vec<Insurance> = Vec::new();
    for (i, p) in ins.iter().enumerate() {
        let insurer = text(&format!("insurance[{i}].insurer"), &p.insurer, 100)?;
        let policy_number = text(&format!("insurance[{i}].policy_number"), &p.policy_number, 60)?;
        if p.end < p.start {
            return Err(ApiError::invalid(format!("insurance[{i}].end"), "保险止期不能早于起期"));
        }
        if insurance.iter().any(|o| o.policy_number == policy_number) {
            return Err(ApiError::invalid(format!("insurance[{i}].policy_number"), "保单号重复"));
        }
        insurance.push(Insurance { insurer, policy_number, start: p.start, end: p.end });
    }
    Ok(Details { skills: s, certificates, insurance })
}

/// Fields of a member that are the person's own data: audit rows keep them only encrypted under
/// the person's key (`personal`), so erasing the person (deleting the key) erases them from the
/// append-only log too, while the rows themselves and their ids stay.
pub const PERSONAL_FIELDS: [&str; 5] = ["name", "id_number", "phone", "certificates", "insurance"];

/// The member's own data key, created on first use.
pub async fn person_key(tx: &mut Tx, cipher: &Cipher, member_id: i64) -> Result<PersonKey, ApiError> {
    let stored: Option<String> =
        with_tx!(&mut *tx, |c| sqlx::query_scalar("SELECT key_enc FROM person_keys WHERE member_id = $1")
            .bind(member_id)
            .fetch_optional(c)
            .await)?;
    if let Some(s) = stored {
        return cipher
            .open_person_key(&s)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("person key of member {member_id} does not decrypt")));
    }
    let (key, enc) = cipher.new_person_key();
    with_tx!(&mut *tx, |c| sqlx::query("INSERT INTO person_keys (member_id, key_enc) VALUES ($1, $2)")
        .bind(member_id)
        .bind(&enc)
        .execute(c)
        .await
        .map(|_| ()))?;
    Ok(key)
}

/// Erases a member's key: every personal field in their audit rows becomes unreadable for good.
pub async fn shred_person_key(tx: &mut Tx, member_id: i64) -> Result<(), ApiError> {
    with_tx!(&mut *tx, |c| sqlx::query("DELETE FROM person_keys WHERE member_id = $1")
        .bind(member_id)
        .execute(c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Moves the personal fields of an audit value into `personal`, encrypted under `key`.
pub(super) fn seal_personal(mut v: serde_json::Value, key: &PersonKey) -> serde_json::Value {
    if let Some(obj) = v.as_object_mut() {
        let mut personal = serde_json::Map::new();
        for f in PERSONAL_FIELDS {
            if let Some(x) = obj.remove(f) {
                personal.insert(f.to_string(), x);
            }
        }
        obj.insert(
            "personal".into(),
            // `to_string` straight into a buffer: `Display` goes through the formatter token by token.
            serde_json::Value::String(
                key.encrypt(&serde_json::to_string(&personal).expect("a JSON object always serialises")),
            ),
        );
    }
    v
}

/// Writes an audit row for a member. Views in audit rows are always masked: personal data never
/// reaches the log.
#[allow(clippy::too_many_arguments)]
pub async fn audit_member(
    tx: &mut Tx,
    cipher: &Cipher,
    actor: &Actor,
    now: Timestamp,
    action: &str,
    row: &MemberRow,
    before: Option<&Member>,
    after: Option<&Member>,
) -> Result<(), ApiError> {
    let key = person_key(tx, cipher, row.id).await?;
    let seal = |m: &Member| audit_json(m).map(|v| seal_personal(v, &key));
    audit::record(
        tx,
        actor,
        now,
        Change {
            action,
            entity_type: "member",
            entity_id: &row.id.to_string(),
            region_code: Some(&row.region_code),
            before: before.map(seal).transpose()?,
            after: after.map(seal).transpose()?,
        },
    )
    .await?;
    Ok(())
}

/// Inserts a member with details and audits it (action `create` or `import`).
#[allow(clippy::too_many_arguments)]
pub async fn create(
    tx: &mut Tx,
    cipher: &Cipher,
    actor: &Actor,
    now: Timestamp,
    mut row: MemberRow,
    id_number: &IdNumber,
    details: &Details,
    action: &str,
) -> Result<MemberRow, ApiError> {
    row.id_number = Some(cipher.encrypt(Field::MEMBER_ID_NUMBER, id_number.as_str()));
    row.id_index = Some(cipher.blind_index(id_number.as_str()));
    row.id = match member_store::insert(tx, &row).await {
        Ok(id) => id,
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(ApiError::Conflict(format!("队伍 {} 已有此身份证号的队员", row.team_code)));
        }
        Err(e) => return Err(e.into()),
    };
    member_store::set_details(tx, row.id, details).await?;
    let after = Member::view(&row, details.clone(), cipher, Disclosure::MASKED, now);
    audit_member(tx, cipher, actor, now, action, &row, None, Some(&after)).await?;
    Ok(row)
}

/// The states a user may move a member to `to` from (call-ups alone deploy and bring back).
pub fn user_change_from(to: MemberStatus) -> &'static [MemberStatus] {
    match to {
        MemberStatus::Retired => &[MemberStatus::Available, MemberStatus::Unavailable],
        MemberStatus::Unavailable => &[MemberStatus::Available],
        MemberStatus::Available => &[MemberStatus::Unavailable],
        MemberStatus::Deployed => &[],
    }
}

/// Checks a status change requested by a user (not by a call-up).
pub fn check_status_change(from: MemberStatus, to: MemberStatus) -> Result<(), ApiError> {
    if from == to {
        return Ok(());
    }
    match (from, to) {
        (MemberStatus::Retired, _) => Err(ApiError::Conflict("队员已退出，状态不能再更改".into())),
        (MemberStatus::Deployed, _) => {
            Err(ApiError::Conflict("队员正在执行调用任务；调用结束后自动恢复为可调用".into()))
        }
        (_, MemberStatus::Deployed) => {
            Err(ApiError::invalid("status", "「执行任务中」只能由调用任务设置（接受调用时选派队员）"))
        }
        _ => Ok(()),
    }
}

/// Validates a member name.
pub fn check_name(name: &str) -> Result<String, ApiError> {
    text("name", name, 50)
}
