//! How members' and contacts' personal data leaves the service: masked by default, in full only
//! when the caller asks (`?reveal=true`) AND holds [`Perm::RevealPersonal`] for the region, and
//! then with an audit row (action `reveal`) per revealed record. Making even admins ask keeps
//! every disclosure deliberate and on record.

use crate::audit::{self, Actor, Change};
use crate::auth::{Perm, Principal};
use crate::db::Tx;
use crate::error::ApiError;
use crate::personal::{Cipher, Field, mask_id, mask_phone};
use crate::time::Timestamp;

/// Whether a response shows personal data in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disclosure {
    /// True only after the permission check passed.
    pub reveal: bool,
}

impl Disclosure {
    /// Masked output.
    pub const MASKED: Disclosure = Disclosure { reveal: false };

    /// Checks a reveal request: asking without the permission for `region` is 403 (so a caller
    /// never silently gets masked data when it asked for full data).
    pub fn ask(p: &Principal, reveal: bool, region: &str) -> Result<Disclosure, ApiError> {
        if reveal {
            p.require_in(Perm::RevealPersonal, region)?;
        }
        Ok(Disclosure { reveal })
    }

    /// An ID number as this disclosure shows it (None when erased).
    pub fn id_number(self, cipher: &Cipher, stored: Option<&str>) -> Option<String> {
        stored.map(|s| match cipher.decrypt(Field::MEMBER_ID_NUMBER, s) {
            Some(plain) if self.reveal => plain,
            Some(plain) => mask_id(&plain),
            None => undecryptable(),
        })
    }

    /// A phone stored in `column` as this disclosure shows it.
    pub fn phone(self, cipher: &Cipher, column: Field, stored: Option<&str>) -> Option<String> {
        stored.map(|s| match cipher.decrypt(column, s) {
            Some(plain) if self.reveal => plain,
            Some(plain) => mask_phone(&plain),
            None => undecryptable(),
        })
    }
}

fn undecryptable() -> String {
    // The value is never logged; only the fact that the key does not fit.
    tracing::warn!("a personal-data value cannot be decrypted with the configured key");
    "（无法解密：密钥不符）".to_string()
}

/// Records that `fields` of an entity were shown in full to the actor.
#[allow(clippy::too_many_arguments)]
pub async fn record_reveal(
    tx: &mut Tx,
    actor: &Actor,
    now: Timestamp,
    entity_type: &str,
    entity_id: &str,
    region: &str,
    fields: &[&str],
    purpose: &str,
) -> Result<(), ApiError> {
    audit::record(
        tx,
        actor,
        now,
        Change {
            action: "reveal",
            entity_type,
            entity_id,
            region_code: Some(region),
            before: None,
            after: Some(serde_json::json!({ "fields": fields, "via": purpose })),
        },
    )
    .await?;
    Ok(())
}
