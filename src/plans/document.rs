//! A plan version rendered as a printable Chinese document (HTML), in the customary order:
//! 总则, 组织指挥体系与职责, 预防与预警机制, 应急处置（含响应分级）, 应急保障, 恢复与重建, 附则.

use std::fmt::Write;

use super::{PlanVersion, Requirements, level_label};

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text with blank-line paragraphs and single line breaks kept.
fn paragraphs(s: &str) -> String {
    let mut out = String::new();
    for para in s.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "<p>{}</p>", esc(para).replace('\n', "<br>"));
    }
    if out.is_empty() {
        out.push_str("<p class=\"empty\">（无）</p>\n");
    }
    out
}

fn fmt_num(q: f64) -> String {
    if q.fract() == 0.0 && q.abs() < 1e15 { format!("{}", q as i64) } else { format!("{q}") }
}

/// Renders a version of a plan owned by `region_name`.
pub fn render(v: &PlanVersion, region_name: &str) -> String {
    let c = &v.content;
    let req = Requirements::of(c);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>body{{font-family:\"SimSun\",\"Songti SC\",serif;max-width:46em;margin:2em auto;line-height:1.8}}\
         h1{{text-align:center;font-family:\"SimHei\",sans-serif}}h2{{font-family:\"SimHei\",sans-serif;font-size:1.2em}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #000;padding:.2em .4em;vertical-align:top}}\
         .meta{{text-align:center}}@media print{{body{{margin:0}}}}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<p class=\"meta\">第 {ver} 版　{status}</p>\n",
        title = esc(&c.title),
        ver = v.version,
        status = esc(v.status.label()),
    );
    h.push_str("<h2>一、总则</h2>\n");
    let hazards: Vec<&str> = c.hazards.iter().map(|x| x.label()).collect();
    let _ = writeln!(
        h,
        "<p>预案类别：{}。适用区域：{}（{}）。适用的突发事件类别：{}。编制单位：{}。牵头部门：{}。</p>",
        esc(c.kind.label()),
        esc(region_name),
        esc(c.region.as_str()),
        esc(&hazards.join("、")),
        esc(&c.owning_unit),
        esc(&c.lead_department),
    );
    if !c.sections.general.trim().is_empty() {
        h.push_str(&paragraphs(&c.sections.general));
    }
    h.push_str("<h2>二、组织指挥体系与职责</h2>\n");
    h.push_str(&paragraphs(&c.sections.organization));
    if !c.member_units.is_empty() {
        h.push_str("<table>\n<tr><th>成员单位</th><th>职责</th></tr>\n");
        for m in &c.member_units {
            let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(&m.name), esc(&m.duties));
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>三、预防与预警机制</h2>\n");
    h.push_str(&paragraphs(&c.sections.prevention));
    h.push_str("<h2>四、应急处置（含响应分级）</h2>\n");
    h.push_str(&paragraphs(&c.sections.response));
    let mut levels: Vec<_> = c.response_levels.iter().collect();
    levels.sort_by_key(|l| l.level);
    for l in &levels {
        let _ = writeln!(h, "<h3>{}响应</h3>\n<p>启动条件：{}</p>", level_label(l.level), esc(&l.criteria));
        if !l.measures.trim().is_empty() {
            let _ = writeln!(h, "<p>响应措施：{}</p>", esc(&l.measures));
        }
    }
    h.push_str("<h2>五、应急保障措施</h2>\n");
    h.push_str(&paragraphs(&c.sections.support));
    h.push_str("<h3>各级响应所需物资与力量</h3>\n<table>\n<tr><th>级别</th><th>类别</th><th>名称/编码</th><th>数量</th><th>范围</th></tr>\n");
    for l in &levels {
        for s in &l.supplies {
            let name = if s.name.is_empty() {
                s.item_code.dashed()
            } else {
                format!("{}（{}）", s.name, s.item_code.dashed())
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>物资</td><td>{}</td><td>{} {}</td><td>{} 公里内</td></tr>",
                level_label(l.level),
                esc(&name),
                fmt_num(s.quantity),
                esc(&s.unit),
                fmt_num(s.within_km)
            );
        }
        for f in &l.forces {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>力量</td><td>{}</td><td>{} 人</td><td>{} 公里内</td></tr>",
                level_label(l.level),
                esc(f.specialty.label()),
                f.headcount,
                fmt_num(f.within_km)
            );
        }
    }
    h.push_str("</table>\n");
    h.push_str("<h2>六、事后恢复与重建</h2>\n");
    h.push_str(&paragraphs(&c.sections.recovery));
    h.push_str("<h2>七、附则</h2>\n");
    if !c.sections.supplementary.trim().is_empty() {
        h.push_str(&paragraphs(&c.sections.supplementary));
    }
    let forms: Vec<&str> = req.drill_forms.iter().map(|f| f.label()).collect();
    let _ = writeln!(
        h,
        "<p>本预案至少每 {} 个月演练一次（形式：{}），每 {} 个月评估一次。</p>",
        req.drill_interval_months,
        esc(&forms.join("、")),
        req.evaluation_interval_months
    );
    if let (Some(on), Some(body)) = (v.issued_on, &v.issuing_body) {
        let _ = writeln!(h, "<p>本预案由{}于 {} 印发，自印发之日起施行。</p>", esc(body), on.format("%Y年%m月%d日"));
    }
    if let (Some(with), Some(on)) = (&v.filed_with, v.filed_on) {
        let receipt = v.filing_receipt.as_deref().unwrap_or("");
        let _ =
            writeln!(h, "<p>已于 {} 报{}备案（回执编号 {}）。</p>", on.format("%Y年%m月%d日"), esc(with), esc(receipt));
    }
    if let Some(r) = v.revision_reason {
        let note = v.revision_note.as_deref().map(|n| format!("：{n}")).unwrap_or_default();
        let _ = writeln!(h, "<p>修订原因：{}{}</p>", esc(r.label()), esc(&note));
    }
    h.push_str("</body>\n</html>\n");
    h
}
