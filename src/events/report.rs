//! Printable Chinese documents built from the board: the situation report (态势报告) and the
//! investigation and assessment report (调查评估报告). Drill-mode documents carry 【演练】 in the
//! title and on every page header.

use super::board::Board;
use crate::plans::document::esc;
use crate::plans::level_label;
use crate::time::Timestamp;

const STYLE: &str = "<style>body{font-family:\"SimSun\",\"Songti SC\",serif;max-width:820px;margin:2em auto;line-height:1.8}h1{text-align:center}table{border-collapse:collapse;width:100%}td,th{border:1px solid #333;padding:4px 8px;text-align:left}.tag{color:#b00;font-weight:bold}.empty{color:#888}@media print{body{margin:0}}</style>";

fn head(b: &Board, what: &str) -> String {
    let tag = b.event.tag();
    let mut h = String::new();
    h.push_str("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!("<title>{tag}{}{what}</title>{STYLE}</head><body>", esc(&b.event.title)));
    if !tag.is_empty() {
        h.push_str("<p class=\"tag\">【演练】本文件为演练材料，所列调度与调用均为演练，不涉及实际库存。</p>");
    }
    h.push_str(&format!("<h1>{tag}{}<br>{what}</h1>", esc(&b.event.title)));
    h
}

fn state_label(s: &str) -> &'static str {
    match s {
        "proposed" => "建议",
        "superseded" => "已替代",
        "requested" => "已发出调用",
        "accepted" => "已接受",
        "declined" => "已拒绝",
        "dispatched" => "已调出",
        "arrived" => "已送达",
        "on_site" => "已到场",
        "returned" => "已撤回/归还",
        _ => "未知",
    }
}

fn overview(b: &Board) -> String {
    let e = &b.event;
    let mut h = String::new();
    h.push_str("<h2>一、事件概况</h2><table>");
    let rows = [
        ("灾种", e.hazard.label().to_string()),
        ("事件分级（估计）", b.severity_label.to_string()),
        ("发生时间", e.occurred_at.local_display()),
        ("获知时间", e.known_at.local_display()),
        ("地点", format!("{}（{}，经度 {:.4}，纬度 {:.4}）", e.place, e.region_code, e.lon, e.lat)),
        ("信息来源", format!("{}；报告人 {}", e.source, e.reporter)),
        ("伤亡", format!("死亡 {} 人，受伤 {} 人，失踪 {} 人，被困 {} 人", e.dead, e.injured, e.missing, e.trapped)),
        (
            "受灾",
            format!(
                "受灾 {} 人、{} 户，涉及牲畜 {} 头（只）",
                e.affected_people, e.affected_households, e.affected_livestock
            ),
        ),
        ("当前状态", b.status_label.to_string()),
    ];
    for (k, v) in rows {
        h.push_str(&format!("<tr><th>{k}</th><td>{}</td></tr>", esc(&v)));
    }
    h.push_str("</table>");
    h.push_str(&format!("<p>{}</p>", esc(&e.description)));
    h
}

fn response(b: &Board) -> String {
    let mut h = String::from("<h2>二、应急响应</h2>");
    if b.activations.is_empty() {
        h.push_str("<p class=\"empty\">尚未启动响应。</p>");
    }
    for a in &b.activations {
        let what = match a.change.as_str() {
            "activate" => "启动",
            "raise" => "提升至",
            _ => "降低至",
        };
        h.push_str(&format!(
            "<p>{} {} {}{}响应（预案编号 {} 第 {} 版）{}</p>",
            a.decided_at.local_display(),
            esc(&a.decided_by),
            what,
            level_label(u8::try_from(a.level).unwrap_or(0)),
            a.plan_id,
            a.plan_version,
            a.reason.as_deref().map(|r| format!("：{}", esc(r))).unwrap_or_default()
        ));
    }
    if let (Some(t), Some(n)) = (b.event.terminated_at, &b.event.termination_note) {
        h.push_str(&format!("<p>{} 响应终止：{}</p>", t.local_display(), esc(n)));
    }
    h
}

fn resources(b: &Board) -> String {
    let mut h = String::from("<h2>三、资源调度</h2>");
    if !b.resource_plan.is_empty() {
        h.push_str("<h3>现行响应级别的资源需求</h3><table><tr><th>需求</th><th>要求</th><th>已落实</th><th>建议</th><th>缺口</th><th>下一来源</th></tr>");
        for n in &b.resource_plan {
            let next: Vec<String> =
                n.next_sources.iter().map(|s| format!("{} {}{}", esc(&s.name), s.take, esc(&n.unit))).collect();
            h.push_str(&format!(
                "<tr><td>{}</td><td>{} {}（{} km 内）</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&n.label),
                n.required,
                esc(&n.unit),
                n.within_km,
                n.committed,
                n.proposed,
                n.gap,
                next.join("；")
            ));
        }
        h.push_str("</table>");
    }
    h.push_str("<h3>调度清单</h3><table><tr><th>类别</th><th>来源</th><th>物资/专业</th><th>数量</th><th>距离（km）</th><th>状态</th></tr>");
    for l in b.lines.iter().filter(|l| l.state != "superseded") {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
            if l.line.kind == "supply" { "物资" } else { "队伍" },
            esc(&l.line.name),
            esc(&l.line.need),
            l.line.quantity,
            l.line.distance_km,
            state_label(&l.state)
        ));
    }
    h.push_str("</table>");
    if !b.requisitions.is_empty() {
        h.push_str("<h3>征用</h3><table><tr><th>所有人</th><th>物资</th><th>数量</th><th>归还</th><th>补偿</th></tr>");
        for r in &b.requisitions {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.owner),
                esc(&r.item_code),
                r.quantity,
                r.returned_on.map(|d| format!("{d} 已归还")).unwrap_or_else(|| "待归还".into()),
                r.compensation_status.label()
            ));
        }
        h.push_str("</table>");
    }
    h
}

fn timeline(b: &Board, n: &str) -> String {
    let mut h = format!("<h2>{n}、事件日志</h2><table><tr><th>时间</th><th>人员</th><th>内容</th></tr>");
    for e in &b.timeline {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.at.local_display(),
            esc(&e.actor),
            esc(&e.text)
        ));
    }
    h.push_str("</table>");
    h
}

/// The situation report (态势报告) as of `now`.
pub fn situation(b: &Board, now: Timestamp) -> String {
    let mut h = head(b, "态势报告");
    h.push_str(&format!("<p>截至 {}（北京时间）</p>", now.local_display()));
    h.push_str(&overview(b));
    h.push_str(&response(b));
    h.push_str(&resources(b));
    h.push_str(&timeline(b, "四"));
    h.push_str("</body></html>");
    h
}

fn minutes_between(a: Timestamp, b: Timestamp) -> String {
    let m = (b.0 - a.0).num_minutes();
    format!("{} 小时 {} 分钟", m / 60, m % 60)
}

/// The investigation and assessment report (调查评估报告).
pub fn assessment(b: &Board) -> String {
    let mut h = head(b, "调查评估报告");
    h.push_str(&overview(b));
    h.push_str(&response(b));
    h.push_str("<h2>三、响应时效</h2>");
    let e = &b.event;
    match e.first_report_at {
        Some(t) => h.push_str(&format!(
            "<p>获知至初报：{}（时限 {}，{}）</p>",
            minutes_between(e.known_at, t),
            minutes_between(e.known_at, e.first_report_due),
            if t <= e.first_report_due { "按时" } else { "迟报" }
        )),
        None => h.push_str("<p>未报出初报。</p>"),
    }
    let first_on_site = b.lines.iter().filter(|l| l.line.kind == "force").filter_map(|l| l.line.arrived_at).min();
    match (e.activated_at, first_on_site) {
        (Some(a), Some(t)) => h.push_str(&format!("<p>启动响应至首支队伍到场：{}</p>", minutes_between(a, t))),
        _ => h.push_str("<p>启动响应至首支队伍到场：无到场记录。</p>"),
    }
    h.push_str(
        "<h2>四、资源计划与实际使用</h2><table><tr><th>需求</th><th>要求</th><th>实际落实</th><th>缺口</th></tr>",
    );
    for n in &b.resource_plan {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td></tr>",
            esc(&n.label),
            n.required,
            esc(&n.unit),
            n.committed,
            (n.required - n.committed).max(0)
        ));
    }
    h.push_str("</table>");
    h.push_str(&resources(b));
    match &b.assessment {
        Some(a) => {
            h.push_str(&format!("<h2>五、事件原因</h2><p>{}</p>", esc(&a.causes)));
            h.push_str(&format!("<h2>六、应对评估</h2><p>{}</p>", esc(&a.summary)));
            h.push_str("<h2>七、经验教训与改进措施</h2><table><tr><th>问题</th><th>原因</th><th>改进措施</th><th>修订预案</th></tr>");
            for l in a.lessons.0.iter() {
                let act = l
                    .action
                    .as_ref()
                    .map(|x| format!("{}（{}，{} 前）", esc(&x.action), esc(&x.owner_unit), x.due_on))
                    .unwrap_or_default();
                h.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&l.problem),
                    esc(&l.cause),
                    act,
                    if l.revise_plan { "是（因实际应对/演练发现问题修订）" } else { "否" }
                ));
            }
            h.push_str("</table>");
            h.push_str(&format!("<p>评估人：{}，{}</p>", esc(&a.assessed_by), a.assessed_at.local_display()));
        }
        None => h.push_str("<h2>五、调查评估</h2><p class=\"empty\">尚未完成调查评估。</p>"),
    }
    if !b.tasks.is_empty() {
        h.push_str(
            "<h2>八、恢复重建与整改任务</h2><table><tr><th>任务</th><th>责任单位</th><th>期限</th><th>状态</th></tr>",
        );
        for t in &b.tasks {
            h.push_str(&format!(
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if t.kind == "corrective" { "【整改】" } else { "" },
                esc(&t.title),
                esc(&t.owner_unit),
                t.due_on,
                if t.status == "done" { "已完成" } else { "进行中" }
            ));
        }
        h.push_str("</table>");
    }
    h.push_str(&timeline(b, "九"));
    h.push_str("</body></html>");
    h
}
