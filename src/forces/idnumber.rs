//! Validated personal identifiers: resident ID-card numbers (GB 11643-1999) and phone numbers.
//! Both can only be built valid; neither prints its value in `Debug`, so a stray `{:?}` cannot
//! put one in a log.

use std::borrow::Cow;
use std::fmt;

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Deserialize;

/// An 18-character resident ID-card number whose check digit is right (GB 11643-1999: weights
/// 2^(17-i) mod 11, check character `10X98765432`[sum mod 11]) and whose birth date is a real
/// date. A lowercase `x` is accepted and stored as `X`.
#[derive(Clone, PartialEq, Eq)]
pub struct IdNumber(String);

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";

impl IdNumber {
    /// Parses and validates an ID number. The error never repeats the value.
    pub fn parse(s: &str) -> Result<IdNumber, String> {
        let s = s.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) || !(b[17].is_ascii_digit() || b[17] == b'X') {
            return Err("身份证号应为 18 位：17 位数字加 1 位校验码（数字或 X）".into());
        }
        let sum: u32 = b[..17].iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
        if CHECK[(sum % 11) as usize] != b[17] {
            return Err("身份证号校验码不正确（GB 11643），请核对".into());
        }
        if NaiveDate::parse_from_str(&s[6..14], "%Y%m%d").is_err() {
            return Err("身份证号中的出生日期无效".into());
        }
        Ok(IdNumber(s))
    }

    /// The number (for encryption and the blind index only).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", crate::personal::mask_id(&self.0))
    }
}

impl<'de> Deserialize<'de> for IdNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        IdNumber::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for IdNumber {
    fn schema_name() -> Cow<'static, str> {
        "IdNumber".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]{17}[0-9Xx]$",
            "description": "18 位居民身份证号（GB 11643 校验码）"
        })
    }
}

/// A phone number: 5 to 20 characters of digits with optional `+`, `-` and spaces (spaces are
/// removed), holding at least 5 digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Parses a phone number. The error never repeats the value.
    pub fn parse(s: &str) -> Result<Phone, String> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let digits = s.chars().filter(char::is_ascii_digit).count();
        let ok = (5..=20).contains(&s.len())
            && digits >= 5
            && s.chars().enumerate().all(|(i, c)| c.is_ascii_digit() || c == '-' || (c == '+' && i == 0));
        if ok { Ok(Phone(s)) } else { Err("电话号码无效：应为 5–20 位数字（可含 +、-）".into()) }
    }

    /// The number (for encryption only).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", crate::personal::mask_phone(&self.0))
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        Phone::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Phone {
    fn schema_name() -> Cow<'static, str> {
        "Phone".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "description": "电话号码", "example": "13812345678" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_need_the_right_check_digit() {
        // 11010519491231002X is the standard's worked example.
        assert!(IdNumber::parse("11010519491231002X").is_ok());
        assert_eq!(IdNumber::parse("11010519491231002x").unwrap().as_str(), "11010519491231002X");
        assert!(IdNumber::parse("110105194912310021").is_err());
        assert!(IdNumber::parse("11010519491231002").is_err());
        let e = IdNumber::parse("110105194912310021").unwrap_err();
        assert!(!e.contains("1101051949"));
        assert!(!format!("{:?}", IdNumber::parse("11010519491231002X").unwrap()).contains("19491231"));
    }

    fn with_check(base: &str) -> String {
        let sum: u32 = base.bytes().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
        format!("{base}{}", CHECK[(sum % 11) as usize] as char)
    }

    #[test]
    fn birth_dates_must_exist() {
        assert!(IdNumber::parse(&with_check("15252319900101123")).is_ok());
        assert!(IdNumber::parse(&with_check("15252319900230123")).is_err(), "30 February");
        assert!(IdNumber::parse(&with_check("15252319901301123")).is_err(), "month 13");
    }

    #[test]
    fn phones() {
        assert_eq!(Phone::parse("138 1234 5678").unwrap().as_str(), "13812345678");
        assert!(Phone::parse("0479-1234567").is_ok());
        assert!(Phone::parse("abc").is_err());
        assert!(Phone::parse("12-3").is_err());
    }
}
