//! Exporting members: `GET /api/v1/export/members.csv` (and its `.xlsx` twin), masked unless an
//! allowed caller asks with `reveal=true` (each revealed member audited).

use warp::reply::Response;

use super::super::csv::ExportQuery;
use super::super::member_store::{self, Which};
use super::super::members::{Certificate, CertificateStatus};
use super::super::personal::{Disclosure, record_reveal};
use super::super::store;
use super::MEMBER_COLUMNS;
use crate::csvio;
use crate::error::ApiResult;
use crate::http::Ctx;
use crate::personal::Field;

/// `GET /api/v1/export/members.csv`.
pub async fn export(c: Ctx) -> ApiResult<Response> {
    let p = c.caller()?;
    let q: ExportQuery = c.query()?;
    let d = Disclosure::ask(p, q.reveal, p.scope.code.as_str())?;
    let (lo, hi) = p.scope.bounds();
    let (cipher, now) = (&c.app.cipher, c.now());
    let mut out = Vec::new();
    let mut revealed = Vec::new();
    for t in store::all(&c.app.db, (&lo, &hi), None).await? {
        let mut details = member_store::details(&c.app.db, Which::Team(t.id)).await?;
        for m in member_store::rows(&c.app.db, Which::Team(t.id)).await? {
            if m.anonymised_at.is_some() || m.id_number.is_none() {
                continue;
            }
            let det = details.remove(&m.id).unwrap_or_default();
            let latest = det.insurance.iter().max_by_key(|i| (i.end, i.start));
            let skills: Vec<&str> = det.skills.iter().map(|s| s.code()).collect();
            out.push(vec![
                t.code.clone(),
                m.name.clone(),
                d.id_number(cipher, m.id_number.as_deref()).unwrap_or_default(),
                d.phone(cipher, Field::MEMBER_PHONE, m.phone.as_deref()).unwrap_or_default(),
                skills.join(";"),
                latest.map(|i| i.insurer.clone()).unwrap_or_default(),
                latest.map(|i| i.policy_number.clone()).unwrap_or_default(),
                latest.map(|i| i.start.to_string()).unwrap_or_default(),
                latest.map(|i| i.end.to_string()).unwrap_or_default(),
                m.status.as_str().to_string(),
            ]);
            // The certificates in force (renewed and revoked ones stay in the member's history).
            let certs: Vec<&Certificate> =
                det.certificates.iter().filter(|c| c.status == CertificateStatus::Active).collect();
            let join = |f: &dyn Fn(&Certificate) -> String| certs.iter().map(|c| f(c)).collect::<Vec<_>>().join(";");
            let row = out.last_mut().expect("just pushed");
            row.push(join(&|c| c.kind.clone()));
            row.push(join(&|c| c.number.clone()));
            row.push(join(&|c| c.issued.to_string()));
            row.push(join(&|c| c.expires.map(|e| e.to_string()).unwrap_or_default()));
            revealed.push((m.id, m.region_code.clone()));
        }
    }
    if d.reveal {
        let mut tx = c.app.db.begin().await?;
        for (id, region) in &revealed {
            record_reveal(
                &mut tx,
                &c.actor()?,
                now,
                "member",
                &id.to_string(),
                region,
                &["id_number", "phone"],
                "GET /api/v1/export/members.csv",
            )
            .await?;
        }
        tx.commit().await?;
    }
    csvio::export(c.route, "队员", csvio::header_row(MEMBER_COLUMNS, q.chinese()?), out).await
}
