//! Personal information (突发事件应对法 arts. 84–85): ID-card numbers and phone numbers are
//! stored encrypted (AES-256-GCM, key from configuration), looked up by a keyed hash, masked by
//! default, and shown in full only to roles with [`crate::auth::Perm::RevealPersonal`], each
//! reveal audited by the caller.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};

/// The key that protects personal data at rest.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
    key: [u8; 32],
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(…)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

impl Cipher {
    /// A cipher from a 32-byte key.
    pub fn new(key: [u8; 32]) -> Cipher {
        Cipher { aead: Aes256Gcm::new(&key.into()), key }
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
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("operating system random source unavailable");
        hex(&key)
    }

    /// Encrypts a value: `v1:` + hex(nonce ‖ ciphertext).
    pub fn encrypt(&self, plain: &str) -> String {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("operating system random source unavailable");
        // Encryption with a valid key and a 12-byte nonce cannot fail.
        let ct = self.aead.encrypt(Nonce::from_slice(&nonce), plain.as_bytes()).expect("AES-GCM encryption");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("v1:{}", hex(&out))
    }

    /// Decrypts a value written by [`Cipher::encrypt`]; None when the key is wrong or the value
    /// was tampered with.
    pub fn decrypt(&self, stored: &str) -> Option<String> {
        let bytes = unhex(stored.strip_prefix("v1:")?)?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ct) = bytes.split_at(12);
        let plain = self.aead.decrypt(Nonce::from_slice(nonce), ct).ok()?;
        String::from_utf8(plain).ok()
    }

    /// A keyed hash for equality lookups (e.g. "is this ID number already a member?") without
    /// storing the value in the clear.
    pub fn blind_index(&self, value: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update([0u8]);
        h.update(value.trim().as_bytes());
        hex(&h.finalize())
    }
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
    fn masks() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_id("152523199001011234"), "1525**********1234");
    }

    #[test]
    fn round_trip_and_wrong_key() {
        let c = Cipher::from_hex(&Cipher::generate_hex()).unwrap();
        let e = c.encrypt("152523199001011234");
        assert!(!e.contains("1525231990"));
        assert_eq!(c.decrypt(&e).as_deref(), Some("152523199001011234"));
        let other = Cipher::from_hex(&Cipher::generate_hex()).unwrap();
        assert_eq!(other.decrypt(&e), None);
        assert_eq!(c.blind_index("x"), c.blind_index(" x "));
        assert_ne!(c.blind_index("x"), other.blind_index("x"));
    }
}
