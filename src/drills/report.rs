//! The drill summary report (演练总结报告) as a printable Chinese HTML document: purpose, time and
//! place, participants, outline, problems and causes, lessons, improvement suggestions, and the
//! evaluation and corrective actions.

use super::Drill;
use super::actions::{CorrectiveAction, Finding};
use super::indicators;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn para(s: &str) -> String {
    if s.trim().is_empty() {
        "<p class=\"empty\">（未填写）</p>".into()
    } else {
        s.lines().map(|l| format!("<p>{}</p>", esc(l))).collect()
    }
}

/// Renders the report.
pub fn render(d: &Drill, findings: &[Finding], actions: &[CorrectiveAction], plan_titles: &[(i64, String)]) -> String {
    let mut h = String::new();
    h.push_str("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!("<title>{}演练总结报告</title>", esc(&d.title)));
    h.push_str("<style>body{font-family:\"SimSun\",\"Songti SC\",serif;max-width:780px;margin:2em auto;line-height:1.8}h1{text-align:center}table{border-collapse:collapse;width:100%}td,th{border:1px solid #333;padding:4px 8px}.empty{color:#888}@media print{body{margin:0}}</style></head><body>");
    h.push_str(&format!("<h1>{}<br>演练总结报告</h1>", esc(&d.title)));
    h.push_str("<h2>一、演练目的</h2>");
    h.push_str(&format!("<p>{}（{}）</p>", d.purpose.label(), d.scope.label()));
    h.push_str(&para(&d.objective));
    if !plan_titles.is_empty() {
        let list: Vec<String> = plan_titles.iter().map(|(id, t)| format!("《{}》（编号 {id}）", esc(t))).collect();
        h.push_str(&format!("<p>检验的预案：{}</p>", list.join("、")));
    }
    h.push_str("<h2>二、时间与地点</h2>");
    h.push_str(&format!(
        "<p>时间：{} 至 {}（北京时间）</p><p>地点：{}</p><p>形式：{}</p>",
        d.starts_at.local_display(),
        d.ends_at.local_display(),
        esc(&d.place_name),
        d.form.label()
    ));
    h.push_str("<h2>三、参演单位与人员</h2>");
    h.push_str(&format!("<p>组织单位：{}</p>", esc(&d.organiser_unit)));
    match &d.actual {
        Some(a) => {
            let units = if a.units.is_empty() { d.participating_units.clone() } else { a.units.clone() };
            h.push_str(&format!("<p>参演单位：{}</p>", esc(&units.join("、"))));
            if !a.teams.is_empty() {
                h.push_str(&format!("<p>参演队伍：{}</p>", esc(&a.teams.join("、"))));
            }
            h.push_str(&format!("<p>参演人数：{} 人</p>", a.participant_count));
        }
        None => h.push_str(&format!("<p>计划参演单位：{}</p>", esc(&d.participating_units.join("、")))),
    }
    h.push_str("<h2>四、演练概况</h2>");
    if let Some(a) = &d.actual {
        h.push_str("<h3>演练情景</h3>");
        h.push_str(&para(&a.scenario));
        h.push_str(&para(&a.outline));
        if !a.timeline.is_empty() {
            h.push_str("<table><tr><th>时间</th><th>过程</th></tr>");
            for t in &a.timeline {
                h.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>", t.at.local_display(), esc(&t.event)));
            }
            h.push_str("</table>");
        }
    } else {
        h.push_str("<p class=\"empty\">（演练尚未完成）</p>");
    }
    h.push_str("<h2>五、发现的问题及原因</h2>");
    if findings.is_empty() {
        h.push_str("<p class=\"empty\">（未记录问题）</p>");
    } else {
        h.push_str("<table><tr><th>序号</th><th>问题</th><th>原因</th></tr>");
        for (i, f) in findings.iter().enumerate() {
            h.push_str(&format!("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", i + 1, esc(&f.problem), esc(&f.cause)));
        }
        h.push_str("</table>");
    }
    let (lessons, suggestions) =
        d.evaluation.as_ref().map(|e| (e.lessons.as_str(), e.suggestions.as_str())).unwrap_or(("", ""));
    h.push_str("<h2>六、经验教训</h2>");
    h.push_str(&para(lessons));
    h.push_str("<h2>七、改进建议</h2>");
    h.push_str(&para(suggestions));
    if !actions.is_empty() {
        h.push_str("<table><tr><th>整改措施</th><th>责任单位</th><th>完成期限</th><th>状态</th></tr>");
        for a in actions {
            let status = match a.status.as_str() {
                "open" => "未完成",
                "done" => "已完成",
                _ => "已验证",
            };
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{status}</td></tr>",
                esc(&a.action),
                esc(&a.owner_unit),
                a.due_on
            ));
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>八、演练评估</h2>");
    match &d.evaluation {
        Some(e) => {
            h.push_str(&format!("<p>评估人：{}　总分：{}　等级：{}</p>", esc(&e.evaluator), e.total, esc(&e.grade)));
            h.push_str("<table><tr><th>指标</th><th>权重</th><th>得分</th><th>说明</th></tr>");
            for ind in indicators::set(d.form) {
                if let Some(s) = e.indicators.iter().find(|s| s.code == ind.code) {
                    h.push_str(&format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        ind.name,
                        ind.weight,
                        s.score,
                        esc(&s.comment)
                    ));
                }
            }
            h.push_str("</table>");
            h.push_str(&format!("<p>评估结论：{}</p>", esc(&e.conclusion)));
        }
        None => h.push_str("<p class=\"empty\">（尚未评估）</p>"),
    }
    h.push_str("</body></html>");
    h
}
