//! The `plans/` directory: one TOML file per plan, templates under `plans/templates/`. Parsing
//! and strict validation with file and line for every error (`yingji plans check`), and an
//! idempotent import (`yingji plans import`, and the first start).

use std::fmt;
use std::ops::Range;
use std::path::Path;

use schemars::JsonSchema;
use serde::Serialize;
use toml::de::{DeTable, DeValue};

use super::lifecycle::{self, Revision};
use super::validate::{Seg, path_string, validate};
use super::{PlanContent, PlanStatus, RevisionReason, store};
use crate::audit::Actor;
use crate::db::Db;
use crate::error::ApiError;
use crate::time::Timestamp;

/// The plan files shipped with the service, compiled in (path relative to the repository, text).
/// The first start loads these unless `YINGJI_PLANS_DIR` names another directory.
pub const SHIPPED: &[(&str, &str)] = &[
    ("plans/banner-overall.toml", include_str!("../../plans/banner-overall.toml")),
    ("plans/snow-disaster.toml", include_str!("../../plans/snow-disaster.toml")),
    ("plans/grassland-fire.toml", include_str!("../../plans/grassland-fire.toml")),
    ("plans/sandstorm.toml", include_str!("../../plans/sandstorm.toml")),
    ("plans/drought.toml", include_str!("../../plans/drought.toml")),
    ("plans/earthquake.toml", include_str!("../../plans/earthquake.toml")),
    ("plans/animal-epidemic.toml", include_str!("../../plans/animal-epidemic.toml")),
    ("plans/mine-accident.toml", include_str!("../../plans/mine-accident.toml")),
    ("plans/mandulatu-township.toml", include_str!("../../plans/mandulatu-township.toml")),
    ("plans/templates/village.toml", include_str!("../../plans/templates/village.toml")),
];

/// An error in a plan file, with its position.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FileError {
    /// File, as given (e.g. `plans/drought.toml`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A parsed, valid plan file.
#[derive(Debug, Clone)]
pub struct PlanFile {
    /// File name as given.
    pub file: String,
    /// Whether it is a template (under `templates/`): checked, never imported.
    pub template: bool,
    /// The content.
    pub content: PlanContent,
}

fn position(text: &str, offset: usize) -> (u64, u64) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() as u64 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
    (line, col)
}

fn span_of(root: &DeValue<'_>, root_span: Range<usize>, path: &[Seg]) -> Range<usize> {
    let mut cur = root;
    let mut span = root_span;
    for seg in path {
        let next = match seg {
            Seg::Key(k) => cur.get(*k),
            Seg::Idx(i) => cur.get(*i),
        };
        match next {
            Some(v) => {
                span = v.span();
                cur = v.get_ref();
            }
            None => break,
        }
    }
    span
}

/// Parses a serde path such as `response_levels[0].supplies[1].item_code` into segments.
fn parse_path(p: &str) -> Vec<(String, Option<usize>)> {
    p.split('.')
        .filter(|s| !s.is_empty() && *s != "?")
        .map(|s| match s.split_once('[') {
            Some((k, rest)) => (k.to_string(), rest.trim_end_matches(']').parse().ok()),
            None => (s.to_string(), None),
        })
        .collect()
}

fn span_of_str(root: &DeValue<'_>, root_span: Range<usize>, path: &str) -> Range<usize> {
    let mut cur = root;
    let mut span = root_span;
    for (key, idx) in parse_path(path) {
        let Some(v) = cur.get(key.as_str()) else { break };
        span = v.span();
        cur = v.get_ref();
        if let Some(i) = idx {
            let Some(v) = cur.get(i) else { break };
            span = v.span();
            cur = v.get_ref();
        }
    }
    span
}

fn field_prefix(path: &str) -> String {
    if path.is_empty() || path == "." { String::new() } else { format!("字段 {path}：") }
}

fn describe(msg: &str) -> String {
    let msg = msg.trim();
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        format!("未知字段 {rest}")
    } else if let Some(rest) = msg.strip_prefix("missing field ") {
        format!("缺少必填字段 {rest}")
    } else if let Some(rest) = msg.strip_prefix("invalid type: ") {
        format!("类型错误：{rest}")
    } else if let Some(rest) = msg.strip_prefix("unknown variant ") {
        format!("取值无效：{rest}")
    } else {
        msg.to_string()
    }
}

/// Parses and validates one plan file. Every error carries the file and line; a file that does
/// has a TOML syntax error reports that error; otherwise every unknown or missing field, wrong
/// type, bad value and broken rule is reported.
pub fn parse(file: &str, text: &str, template: bool) -> Result<PlanContent, Vec<FileError>> {
    let at = |offset: Option<usize>, message: String| {
        let pos = offset.map(|o| position(text, o));
        FileError { file: file.to_string(), line: pos.map(|p| p.0), column: pos.map(|p| p.1), message }
    };
    let tree = DeTable::parse(text).map_err(|e| vec![at(e.span().map(|s| s.start), describe(e.message()))])?;
    let root_span = tree.span();
    let root = DeValue::Table(tree.into_inner());
    let de = toml::de::Deserializer::parse(text).map_err(|e| vec![at(e.span().map(|s| s.start), e.to_string())])?;
    let content: PlanContent = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let offset =
            inner.span().map(|s| s.start).unwrap_or_else(|| span_of_str(&root, root_span.clone(), &path).start);
        let first = at(Some(offset), format!("{}{}", field_prefix(&path), describe(inner.message())));
        // Serde stops at the first error; look at each part on its own to report them all.
        let mut all: Vec<FileError> = super::strict::errors(text)
            .into_iter()
            .map(|(path, msg)| {
                let offset = span_of_str(&root, root_span.clone(), &path).start;
                at(Some(offset), format!("{}{}", field_prefix(&path), describe(&msg)))
            })
            .collect();
        if !all.iter().any(|e| e.line == first.line && e.message == first.message) {
            all.push(first);
        }
        all.sort_by_key(|e| (e.line, e.column));
        all
    })?;
    let mut errors: Vec<FileError> = validate(&content, template)
        .into_iter()
        .map(|i| {
            let span = span_of(&root, root_span.clone(), &i.path);
            at(Some(span.start), format!("字段 {}：{}", path_string(&i.path), i.message))
        })
        .collect();
    if !template && content.key.is_none() {
        errors.push(at(Some(0), "缺少必填字段 key（导入时用它识别预案）".into()));
    }
    if errors.is_empty() { Ok(content) } else { Err(errors) }
}

/// Parses a set of files (name, text); a name containing `templates/` is a template. Also
/// checks that no two plan files share a key. Returns every error of every file.
pub fn parse_all(files: &[(String, String)]) -> Result<Vec<PlanFile>, Vec<FileError>> {
    let mut out: Vec<PlanFile> = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in files {
        let template = name.replace('\\', "/").contains("templates/");
        match parse(name, text, template) {
            Ok(content) => {
                if !template && let Some(prev) = out.iter().find(|f| !f.template && f.content.key == content.key) {
                    errors.push(FileError {
                        file: name.clone(),
                        line: None,
                        column: None,
                        message: format!("key {:?} 与 {} 重复", content.key.as_deref().unwrap_or(""), prev.file),
                    });
                    continue;
                }
                out.push(PlanFile { file: name.clone(), template, content });
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// Reads `dir/*.toml` and `dir/templates/*.toml`, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, Vec<FileError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("templates")] {
        let entries = match std::fs::read_dir(&sub) {
            Ok(e) => e,
            Err(_) if sub != dir => continue,
            Err(e) => {
                let file = dir.display().to_string();
                return Err(vec![FileError {
                    file, line: None, column: None, message: format!("无法读取目录：{e}")
                }]);
            }
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for p in paths {
            let name = p.display().to_string();
            match std::fs::read(&p).map(String::from_utf8) {
                Ok(Ok(text)) => files.push((name, text)),
                Ok(Err(_)) => {
                    errors
                        .push(FileError { file: name, line: None, column: None, message: "不是 UTF-8 文本".into() })
                }
                Err(e) => errors.push(FileError { file: name, line: None, column: None, message: format!("{e}") }),
            }
        }
    }
    if errors.is_empty() { Ok(files) } else { Err(errors) }
}

/// Checks a directory: every error of every file.
pub fn check_dir(dir: &Path) -> Result<Vec<PlanFile>, Vec<FileError>> {
    parse_all(&read_dir(dir)?)
}

/// The shipped files, parsed.
pub fn shipped() -> Result<Vec<PlanFile>, Vec<FileError>> {
    let files: Vec<(String, String)> = SHIPPED.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
    parse_all(&files)
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, JsonSchema, PartialEq, Eq)]
pub struct ImportSummary {
    /// Plan files read (templates excluded).
    pub files: u32,
    /// New plans created.
    pub created: u32,
    /// Plans that got a new draft version because their file changed.
    pub revised: u32,
    /// Files identical to the plan's latest version (nothing written).
    pub unchanged: u32,
    /// Templates skipped.
    pub templates: u32,
}

/// Imports parsed files in one transaction (all or nothing). A new key creates a plan (version
/// 1, draft); a file identical to its plan's latest version changes nothing; a changed file
/// adds a new draft version (reason `other`), superseding an unapproved draft. A plan under
/// review or retired cannot take a changed file (409, nothing imported).
pub async fn import(db: &Db, actor: &Actor, now: Timestamp, files: &[PlanFile]) -> Result<ImportSummary, ApiError> {
    let mut s = ImportSummary::default();
    let mut tx = db.begin().await?;
    for f in files {
        if f.template {
            s.templates += 1;
            continue;
        }
        s.files += 1;
        let in_file = |e: ApiError| match e {
            ApiError::Conflict(m) => ApiError::Conflict(format!("{}: {m}", f.file)),
            ApiError::Validation { detail, errors } => {
                ApiError::Validation { detail: format!("{}: {detail}", f.file), errors }
            }
            other => other,
        };
        let key = f.content.key.as_deref().unwrap_or_default();
        let Some(plan) = store::by_key_tx(&mut tx, key).await? else {
            lifecycle::create(&mut tx, actor, now, f.content.clone()).await.map_err(in_file)?;
            s.created += 1;
            continue;
        };
        let (_, latest) = lifecycle::load(&mut tx, plan.id).await?;
        if latest.content == f.content {
            s.unchanged += 1;
            continue;
        }
        if matches!(latest.status, PlanStatus::Review | PlanStatus::Retired) {
            return Err(in_file(ApiError::Conflict(format!(
                "预案 {key}（编号 {}）第 {} 版状态为「{}」，不能导入变更的文件；请先处理该版本",
                plan.id,
                latest.version,
                latest.status.label()
            ))));
        }
        let r = Revision { reason: RevisionReason::Other, note: Some(format!("由预案文件 {} 导入", f.file)) };
        lifecycle::revise(&mut tx, actor, now, plan.id, &r, Some(f.content.clone()), true).await.map_err(in_file)?;
        s.revised += 1;
    }
    tx.commit().await?;
    Ok(s)
}
