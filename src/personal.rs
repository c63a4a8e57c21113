//! Personal information (突发事件应对法 arts. 84–85): ID-card numbers and phone numbers are
//! stored encrypted, looked up by a keyed hash, masked by default, and shown in full only to roles
//! with [`crate::auth::Perm::RevealPersonal`], each reveal audited by the caller.
//!
//! One master key (32 bytes, see [`crate::keys`] for where it lives and how it is checked) never
//! touches data itself: HKDF-SHA256 derives a separate encryption key and blind-index key from it.
//! Values are AES-256-GCM encrypted with the table and column as associated data, so a ciphertext
//! copied into another column (or another row's column of a different kind) does not decrypt; the
//! blind index is HMAC-SHA256 under its own key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Where an encrypted value is stored: its table and column, bound into the ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field(pub &'static str);

impl Field {
    /// `depots.phone_enc`.
    pub const DEPOT_PHONE: Field = Field("depots.phone_enc");
    /// `teams.leader_phone`.
    pub const TEAM_LEADER_PHONE: Field = Field("teams.leader_phone");
    /// `teams.contact_phone`.
    pub const TEAM_CONTACT_PHONE: Field = Field("teams.contact_phone");
    /// `members.id_number`.
    pub const MEMBER_ID_NUMBER: Field = Field("members.id_number");
    /// `members.phone`.
    pub const MEMBER_PHONE: Field = Field("members.phone");
    /// `channels.url_enc`.
    pub const CHANNEL_URL: Field = Field("channels.url_enc");
    /// `channels.secret_enc`.
    pub const CHANNEL_SECRET: Field = Field("channels.secret_enc");
    /// `person_keys.key_enc`.
    pub const PERSON_KEY: Field = Field("person_keys.key_enc");
    /// Personal fields inside an audit row (under a person's own key).
    pub const AUDIT_PERSONAL: Field = Field("audit_log.personal");
}

/// The key that protects personal data at rest.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
    index_key: [u8; 32],
    master: [u8; 32],
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(…)")
    }
}

/// Lower-case hex. Table-driven: a bulk import encodes millions of ciphertexts, and a `format!`
/// per byte was the largest single cost of a members import after the allocator.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn derive(master: &[u8; 32], info: &str) -> [u8; 32] {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(b"yingji personal data"), master);
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8,160-byte limit.
    hk.expand(info.as_bytes(), &mut out).expect("HKDF output length");
    out
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

impl Cipher {
    /// A cipher from a 32-byte master key.
    pub fn new(master: [u8; 32]) -> Cipher {
        let enc = derive(&master, "aes-256-gcm v2");
        let index_key = derive(&master, "blind index hmac-sha256 v2");
        Cipher { aead: Aes256Gcm::new(&enc.into()), index_key, master }
    }

    /// Parses a key given as 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Cipher, String> {
        let bytes = unhex(s.trim()).filter(|b| b.len() == 32).ok_or("个人信息密钥应为 64 位十六进制数（32 字节）")?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(Cipher::new(key))
    }

    /// A fresh random key as 64 hex digits.
    pub fn generate_hex() -> String {
        hex(&random32())
    }

    /// The master key's fingerprint (stored in the database; reveals nothing about the key).
    pub fn fingerprint(&self) -> String {
        hex(&hmac(&self.master, b"yingji pii key fingerprint")[..16])
    }

    /// Encrypts a value for `field`: `v2:` + hex(nonce ‖ ciphertext).
    pub fn encrypt(&self, field: Field, plain: &str) -> String {
        seal(&self.aead, field, plain.as_bytes())
    }

    /// Decrypts a value written by [`Cipher::encrypt`] for the same `field`; None when the key is
    /// wrong, the value was tampered with or moved from another column.
    pub fn decrypt(&self, field: Field, stored: &str) -> Option<String> {
        String::from_utf8(open(&self.aead, field, stored)?).ok()
    }

    /// Decrypts a value in the format of earlier versions (`v1:`: the master key used directly,
    /// no associated data); only the migration to the current format reads these.
    pub fn decrypt_v1(&self, stored: &str) -> Option<String> {
        let bytes = unhex(stored.strip_prefix("v1:")?)?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ct) = bytes.split_at(12);
        let aead = Aes256Gcm::new(&self.master.into());
        String::from_utf8(aead.decrypt(Nonce::from_slice(nonce), ct).ok()?).ok()
    }

    /// A keyed hash (HMAC-SHA256 under the index subkey) for equality lookups (e.g. "is this ID
    /// number already a member?") without storing the value in the clear.
    pub fn blind_index(&self, value: &str) -> String {
        hex(&hmac(&self.index_key, value.trim().as_bytes()))
    }

    /// A new random per-person key, and that key encrypted under this cipher for storage.
    pub fn new_person_key(&self) -> (PersonKey, String) {
        let key = random32();
        (PersonKey::new(key), self.encrypt(Field::PERSON_KEY, &hex(&key)))
    }

    /// Opens a stored per-person key.
    pub fn open_person_key(&self, stored: &str) -> Option<PersonKey> {
        let bytes = unhex(&self.decrypt(Field::PERSON_KEY, stored)?)?;
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(PersonKey::new(key))
    }
}

/// One person's own data key: what audit rows encrypt that person's personal fields under.
/// Deleting it (erasure) makes those fields unreadable for good.
#[derive(Clone)]
pub struct PersonKey(Aes256Gcm);

impl PersonKey {
    fn new(key: [u8; 32]) -> PersonKey {
        PersonKey(Aes256Gcm::new(&key.into()))
    }

    /// Encrypts personal fields for an audit row.
    pub fn encrypt(&self, plain: &str) -> String {
        seal(&self.0, Field::AUDIT_PERSONAL, plain.as_bytes())
    }

    /// Decrypts what [`PersonKey::encrypt`] wrote.
    pub fn decrypt(&self, stored: &str) -> Option<String> {
        String::from_utf8(open(&self.0, Field::AUDIT_PERSONAL, stored)?).ok()
    }
}

fn random32() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("operating system random source unavailable");
    key
}

fn seal(aead: &Aes256Gcm, field: Field, plain: &[u8]) -> String {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).expect("operating system random source unavailable");
    // Encryption with a valid key and a 12-byte nonce cannot fail.
    let ct = aead.encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: field.0.as_bytes() }).expect("AES-GCM");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    format!("v2:{}", hex(&out))
}

fn open(aead: &Aes256Gcm, field: Field, stored: &str) -> Option<Vec<u8>> {
    let bytes = unhex(stored.strip_prefix("v2:")?)?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, ct) = bytes.split_at(12);
    aead.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: field.0.as_bytes() }).ok()
}

/// Masks a phone number: `138****5678`.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.trim().chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let keep_tail = 4;
    let keep_head = 3;
    let mut s: String = chars[..keep_head].iter().collect();
    s.push_str(&"*".repeat(chars.len() - keep_head - keep_tail));
    s.extend(&chars[chars.len() - keep_tail..]);
    s
}

/// Masks an ID-card number: `1525**********1234`.
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.trim().chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let mut s: String = chars[..4].iter().collect();
    s.push_str(&"*".repeat(chars.len() - 8));
    s.extend(&chars[chars.len() - 4..]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(unhex(&hex(&[1, 2, 254])), Some(vec![1, 2, 254]));
    }

    #[test]
    fn masks() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_id("152523199001011234"), "1525**********1234");
    }

    #[test]
    fn round_trip_wrong_key_and_wrong_column() {
        let c = Cipher::from_hex(&Cipher::generate_hex()).unwrap();
        let e = c.encrypt(Field::MEMBER_ID_NUMBER, "152523199001011234");
        assert!(!e.contains("1525231990"));
        assert_eq!(c.decrypt(Field::MEMBER_ID_NUMBER, &e).as_deref(), Some("152523199001011234"));
        assert_eq!(c.decrypt(Field::MEMBER_PHONE, &e), None, "bound to its column");
        let other = Cipher::from_hex(&Cipher::generate_hex()).unwrap();
        assert_eq!(other.decrypt(Field::MEMBER_ID_NUMBER, &e), None);
        assert_eq!(c.blind_index("x"), c.blind_index(" x "));
        assert_ne!(c.blind_index("x"), other.blind_index("x"));
        assert_ne!(c.fingerprint(), other.fingerprint());
        let (pk, stored) = c.new_person_key();
        let sealed = pk.encrypt("张三");
        assert_eq!(c.open_person_key(&stored).unwrap().decrypt(&sealed).as_deref(), Some("张三"));
        assert!(other.open_person_key(&stored).is_none());
    }
}
