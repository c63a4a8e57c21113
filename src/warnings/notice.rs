//! The printable Chinese warning notice (预警信息) for one region: what the law asks a warning to
//! state (category, level, start time, area, what to watch, measures, issuer, issue time —
//! 《突发事件应对法》（2024） arts. 63–64), this region's readiness gaps for the hazard, and its
//! acknowledgement.

use std::fmt::Write;

use warp::reply::Response;

use super::routes::NoticeParams;
use super::store;
use super::{MsgType, level_colour, level_name};
use crate::auth::Perm;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::http::ctx::body;
use crate::plans::document::esc;

/// Colour swatches for the level (text colour on white: the level is also written out, so it is
/// never shown by colour alone).
fn swatch(level: u8) -> &'static str {
    match level {
        1 => "#c00000",
        2 => "#d46b00",
        3 => "#8a6d00",
        _ => "#0050b3",
    }
}

pub(super) async fn notice(c: Ctx) -> ApiResult<Response> {
    let (p, w) = super::handlers::load(&c, Perm::Read).await?;
    let q: NoticeParams = c.query()?;
    let region = q.region.map(|r| r.to_string()).unwrap_or_else(|| p.scope.code.to_string());
    p.require_region(&region)?;
    let row = store::recipients(&c.app.db, w.id, (&region, &region), None)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound(format!("预警未下发到区划 {region}")))?;
    let subtree = match crate::regions::store::get(&c.app.db, &region).await? {
        Some(r) => crate::auth::Scope {
            code: crate::regions::RegionCode::parse(&r.code).map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?,
            level: r.level,
        }
        .bounds(),
        None => (region.clone(), region.clone()),
    };
    let findings = store::findings(&c.app.db, w.id, (&subtree.0, &subtree.1)).await?;
    let level = w.level as u8;
    let mut h = String::new();
    let title =
        format!("{}{}", if w.msg_type == MsgType::Cancel { "预警解除信息：" } else { "预警信息：" }, w.headline);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n\
         <style>body{{font-family:\"SimSun\",\"Songti SC\",serif;max-width:46em;margin:2em auto;line-height:1.8;font-size:18px}}\
         h1{{text-align:center;font-family:\"SimHei\",sans-serif}}table{{border-collapse:collapse;width:100%}}\
         td,th{{border:1px solid #000;padding:.3em .5em;vertical-align:top;text-align:left}}th{{width:7em}}\
         .level{{font-weight:bold;color:{colour}}}.exercise{{border:2px dashed #000;padding:.3em;text-align:center}}\
         @media print{{body{{margin:0}}}}</style>\n</head>\n<body>\n<h1>预警信息</h1>\n",
        t = esc(&title),
        colour = swatch(level),
    );
    if w.cap_status == super::CapStatus::Exercise {
        h.push_str("<p class=\"exercise\">【演练】本预警为演练信息，不是实际预警</p>\n");
    }
    let rows: Vec<(&str, String)> = vec![
        ("接收区划", row.region_name.clone()),
        ("标题", w.headline.clone()),
        ("预警类别", format!("{}（{}）", w.event, w.hazard.label())),
        ("预警级别", format!("{}预警 · {}", level_colour(level), level_name(level))),
        ("状态", w.status.label().to_string()),
        ("起始时间", w.effective_at.local_display()),
        ("结束时间", w.expires_at.local_display()),
        ("影响区域", w.area_desc.clone()),
        ("可能影响与注意事项", w.description.clone()),
        ("防御指南（应采取的措施）", w.instruction.clone()),
        ("发布机关", w.issuer.clone()),
        ("发布时间", w.sent_at.local_display()),
        ("消息标识", w.identifier.clone()),
    ];
    h.push_str("<table>\n");
    for (k, v) in rows {
        let class = if k == "预警级别" { " class=\"level\"" } else { "" };
        let _ = writeln!(h, "<tr><th>{}</th><td{class}>{}</td></tr>", esc(k), esc(&v).replace('\n', "<br>"));
    }
    h.push_str("</table>\n");
    if w.msg_type != MsgType::Cancel {
        let _ = writeln!(h, "<h2>本区划{}准备情况</h2>", esc(w.hazard.label()));
        if findings.is_empty() {
            h.push_str("<p>发布时的定向检查未发现缺口。</p>\n");
        } else {
            h.push_str("<table>\n<tr><th>问题</th><th>建议措施</th></tr>\n");
            for f in &findings {
                let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(&f.message), esc(&f.action));
            }
            h.push_str("</table>\n");
        }
    }
    let ack = match (&row.acked_at, &row.acked_by) {
        (Some(t), Some(by)) => format!("已于 {} 由 {} 签收", t.local_display(), by),
        _ => "尚未签收".to_string(),
    };
    let _ = writeln!(h, "<p>签收情况：{}</p>\n<p>签收人（签字）：__________　　日期：__________</p>", esc(&ack));
    h.push_str("</body>\n</html>\n");
    Ok(body("text/html; charset=utf-8", h))
}
