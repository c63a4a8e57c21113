//! A members-file row as parsed (short texts inline in [`Short`], the ID number as its 18 bytes,
//! skills as a bit set: a few chunks of rows are in flight while a file streams by), and the
//! conversions to the types the one-by-one API stores.

use chrono::NaiveDate;

use super::super::MemberStatus;
use super::super::idnumber::{IdNumber, Phone};
use super::super::members::{Certificate, Details, Insurance};
use super::CERT_COLS;
use crate::csvio::Record;
use crate::error::FieldError;
use crate::imports::short::Short;
use crate::vocab::Specialty;

/// The ID-number cell: a full number (validated, upper-case `X`), or a masked one from an export
/// without the personal-data permission (matches an existing member only).
pub enum Ident {
    /// A valid 18-character ID number.
    Full([u8; 18]),
    /// A masked number as exported (`1525**********1234`).
    Masked(Box<str>),
}

impl Ident {
    /// The full number, when the cell holds one.
    pub fn full(&self) -> Option<&str> {
        match self {
            // Built only from a validated ASCII number.
            Ident::Full(b) => std::str::from_utf8(b).ok(),
            Ident::Masked(_) => None,
        }
    }
}

/// The phone cell.
pub enum PhoneCell {
    /// Empty: keep what is stored.
    Keep,
    /// A valid phone number.
    Set(Short),
    /// A masked phone as exported: must match what is stored.
    Masked(Short),
}

/// A policy as read (one per row).
pub struct Policy {
    insurer: Short,
    policy_number: Short,
    start: NaiveDate,
    end: NaiveDate,
}

impl Policy {
    /// The policy as stored.
    pub fn insurance(&self) -> Insurance {
        Insurance {
            insurer: self.insurer.to_string(),
            policy_number: self.policy_number.to_string(),
            start: self.start,
            end: self.end,
        }
    }
}

/// A certificate as read.
pub struct Cert {
    kind: Short,
    number: Short,
    issued: NaiveDate,
    expires: Option<NaiveDate>,
}

impl Cert {
    /// The certificate as stored (active).
    pub fn certificate(&self) -> Certificate {
        Certificate::new(self.kind.to_string(), self.number.to_string(), self.issued, self.expires)
    }
}

/// A set of specialties, one bit per [`Specialty::ALL`] entry.
#[derive(Clone, Copy, Default)]
pub struct Skills(u32);

impl Skills {
    /// The set from its stored bits.
    pub fn from_bits(bits: u32) -> Skills {
        Skills(bits)
    }

    /// The bits, as staged.
    pub fn bits(self) -> u32 {
        self.0
    }

    fn insert(&mut self, s: Specialty) {
        if let Some(i) = Specialty::ALL.iter().position(|k| *k == s) {
            self.0 |= 1 << i;
        }
    }

    /// The specialties, sorted.
    pub fn list(self) -> Vec<Specialty> {
        let mut v: Vec<Specialty> =
            Specialty::ALL.iter().enumerate().filter(|(i, _)| self.0 & (1 << i) != 0).map(|(_, s)| *s).collect();
        v.sort();
        v
    }
}

/// A member row as parsed.
pub struct Row {
    /// The team's code.
    pub team: Short,
    /// The member's name.
    pub name: Short,
    /// The ID-number cell.
    pub id: Ident,
    /// The phone cell.
    pub phone: PhoneCell,
    /// Skills (None: the cell is empty, keep what is stored).
    pub skills: Option<Skills>,
    /// A policy (added, or replacing the one with the same number).
    pub insurance: Option<Policy>,
    /// Certificates (added, or corrected in place by number).
    pub certificates: Box<[Cert]>,
    /// The status asked for.
    pub status: Option<MemberStatus>,
}

impl Row {
    /// The details a new member gets from this row.
    pub fn new_details(&self) -> Details {
        Details {
            skills: self.skills.map(Skills::list).unwrap_or_default(),
            certificates: self.certificates.iter().map(Cert::certificate).collect(),
            insurance: self.insurance.iter().map(Policy::insurance).collect(),
        }
    }
}

/// The details of an existing member as a row changes them: skills replaced when given,
/// certificates added or corrected in place by number (never removed: they are a history), the
/// policy added or replacing the one with its number.
pub fn merge_details(
    old: &Details,
    skills: Option<Skills>,
    certs: &[Certificate],
    policy: Option<Insurance>,
) -> Details {
    let mut details = old.clone();
    if let Some(s) = skills {
        details.skills = s.list();
    }
    for cert in certs {
        match details.certificates.iter_mut().find(|c| c.number == cert.number) {
            Some(c) => (c.kind, c.issued, c.expires) = (cert.kind.clone(), cert.issued, cert.expires),
            None => details.certificates.push(cert.clone()),
        }
    }
    if let Some(ins) = policy {
        details.insurance.retain(|i| i.policy_number != ins.policy_number);
        details.insurance.push(ins);
        details.insurance.sort_by(|a, b| (a.start, &a.policy_number).cmp(&(b.start, &b.policy_number)));
    }
    details
}

fn date(rec: &Record, col: &'static str, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    day(rec, col, rec.get(col)?, errors)
}

fn day(rec: &Record, col: &'static str, v: &str, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(v, "%Y/%m/%d"))
        .map_err(|_| errors.push(rec.err(col, format!("日期「{v}」无效，应为 YYYY-MM-DD"))))
        .ok()
}

/// Parses a row; every problem goes to `errors` (None when there is one).
pub fn parse(rec: &Record, errors: &mut Vec<FieldError>) -> Option<Row> {
    let n = errors.len();
    let team = rec.need("team_code", errors).map(Short::from);
    let name = rec.need("name", errors).map(Short::from);
    if name.as_ref().is_some_and(|v| v.chars().count() > 50) {
        errors.push(rec.err("name", "超过 50 个字符"));
    }
    let id = rec.need("id_number", errors).and_then(|v| {
        if v.contains('*') {
            Some(Ident::Masked(v.into()))
        } else {
            IdNumber::parse(v)
                .map(|id| {
                    let mut b = [0u8; 18];
                    b.copy_from_slice(id.as_str().as_bytes());
                    Ident::Full(b)
                })
                .map_err(|m| errors.push(rec.err("id_number", m)))
                .ok()
        }
    });
    let phone = match rec.get("phone") {
        None => PhoneCell::Keep,
        Some(v) if v.contains('*') => PhoneCell::Masked(v.into()),
        Some(v) => match Phone::parse(v) {
            Ok(p) => PhoneCell::Set(p.as_str().into()),
            Err(m) => {
                errors.push(rec.err("phone", m));
                PhoneCell::Keep
            }
        },
    };
    let skills = rec.get("skills").map(|v| {
        let mut out = Skills::default();
        for s in v.split([';', '；']).map(str::trim).filter(|s| !s.is_empty()) {
            match Specialty::parse(s) {
                Some(k) => out.insert(k),
                None => errors.push(rec.err("skills", format!("专业「{s}」无效"))),
            }
        }
        out
    });
    let cols = ["insurer", "policy_number", "insurance_start", "insurance_end"];
    let insurance = if cols.iter().all(|c| rec.get(c).is_none()) {
        None
    } else {
        let insurer = rec.need("insurer", errors).map(Short::from);
        let policy = rec.need("policy_number", errors).map(Short::from);
        let start = rec.need("insurance_start", errors).and(date(rec, "insurance_start", errors));
        let end = rec.need("insurance_end", errors).and(date(rec, "insurance_end", errors));
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            errors.push(rec.err("insurance_end", "保险止期不能早于起期"));
        }
        match (insurer, policy, start, end) {
            (Some(insurer), Some(policy_number), Some(start), Some(end)) => {
                Some(Policy { insurer, policy_number, start, end })
            }
            _ => None,
        }
    };
    let certificates = certificates(rec, errors);
    let status = rec.get("status").and_then(|v| {
        MemberStatus::parse(v).or_else(|| {
            errors.push(rec.err("status", format!("状态「{v}」无效，应为 {}", MemberStatus::choices())));
            None
        })
    });
    if errors.len() != n {
        return None;
    }
    Some(Row { team: team?, name: name?, id: id?, phone, skills, insurance, certificates, status })
}

/// The certificates of a row: kind, number, issue date and expiry date, each column holding
/// one value per certificate separated by `;` (an empty expiry: does not expire).
fn certificates(rec: &Record, errors: &mut Vec<FieldError>) -> Box<[Cert]> {
    let split = |c: &str| -> Vec<&str> {
        rec.get(c).map(|v| v.split([';', '；']).map(str::trim).collect()).unwrap_or_default()
    };
    let [kinds, numbers, issued, expires] = CERT_COLS.map(split);
    if kinds.is_empty() && numbers.is_empty() && issued.is_empty() && expires.is_empty() {
        return Box::default();
    }
    let n = kinds.len();
    for (col, v) in CERT_COLS.iter().zip([&kinds, &numbers, &issued, &expires]).skip(1) {
        // An expiry column may be left out entirely (no certificate expires).
        if v.len() != n && !(*col == "certificate_expires" && v.is_empty()) {
            errors.push(rec.err(col, format!("有 {} 项，证书种类有 {n} 项，应一一对应（用 ; 分隔）", v.len())));
            return Box::default();
        }
    }
    let mut parsed: Vec<Cert> = Vec::with_capacity(n);
    let mut bad = Vec::new();
    for i in 0..n {
        let (kind, number) = (kinds[i], numbers[i]);
        if kind.is_empty() || number.is_empty() || kind.chars().count() > 60 || number.chars().count() > 60 {
            bad.push(
                rec.err("certificate_number", format!("第 {} 张证书的种类和编号不能为空，且不超过 60 个字符", i + 1)),
            );
            continue;
        }
        let Some(iss) = day(rec, "certificate_issued", issued[i], errors) else { continue };
        let exp = match expires.get(i).copied() {
            None | Some("") => None,
            Some(v) => match day(rec, "certificate_expires", v, errors) {
                Some(d) => Some(d),
                None => continue,
            },
        };
        if exp.is_some_and(|e| e < iss) {
            bad.push(rec.err("certificate_expires", format!("证书 {number} 的有效期早于发证日期")));
            continue;
        }
        if parsed.iter().any(|c| *c.number == *number) {
            bad.push(rec.err("certificate_number", format!("证书编号 {number} 在本行重复")));
            continue;
        }
        parsed.push(Cert { kind: kind.into(), number: number.into(), issued: iss, expires: exp });
    }
    errors.extend(bad);
    parsed.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_stay_compact() {
        // Rows are in flight a few chunks at a time: keep them small.
        assert!(std::mem::size_of::<Row>() <= 192, "{}", std::mem::size_of::<Row>());
    }

    #[test]
    fn skills_list_sorted_once_each() {
        let mut s = Skills::default();
        s.insert(Specialty::Medical);
        s.insert(Specialty::CollapseSearch);
        s.insert(Specialty::Medical);
        assert_eq!(s.list(), vec![Specialty::CollapseSearch, Specialty::Medical]);
    }
}
