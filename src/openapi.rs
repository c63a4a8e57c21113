//! The OpenAPI 3.1 document, built from the route table so that every served route is described,
//! and a plain HTML page listing the same routes.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::http::router::{Access, BodyKind, Router};

fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|seg| {
            let open = seg.find('{')?;
            let close = seg.find('}')?;
            Some(seg[open + 1..close].to_string())
        })
        .collect()
}

/// Builds the OpenAPI document.
pub fn document(router: &Router) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    let problem = generator.subschema_for::<crate::error::Problem>();
    let mut paths: Map<String, Value> = Map::new();
    for r in router.routes() {
        let d = &r.doc;
        let mut params: Vec<Value> = path_params(r.path)
            .into_iter()
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if let Some(q) = d.query {
            let s = q(&mut generator);
            let resolved = resolve(&generator, s.as_value());
            let required: Vec<&str> = resolved
                .get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = resolved.get("properties").and_then(Value::as_object) {
                for (name, schema) in props {
                    // A query parameter is absent or has a value, never `null`.
                    let schema = &not_null(schema);
                    params.push(json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "description": schema.get("description").cloned().unwrap_or(Value::Null),
                        "schema": schema,
                    }));
                }
            }
        }
        if r.access == Access::FeedToken && !params.iter().any(|p| p["name"] == "token") {
            params.push(json!({"name": "token", "in": "query", "required": true, "description": "订阅令牌", "schema": {"type": "string"}}));
        }
        let access = r.access_text();
        let description = if d.description.is_empty() {
            format!("访问：{access}")
        } else {
            format!("{}\n\n访问：{access}", d.description)
        };
        let mut op = json!({
            "tags": [d.tag],
            "summary": d.summary,
            "description": description,
            "operationId": format!("{} {}", r.method, r.path),
            "parameters": params,
        });
        if let Some(g) = &r.guard {
            // Machine-readable access rule: the permission and which roles carry it.
            let roles: Vec<&str> =
                crate::auth::Role::ALL.iter().filter(|role| role.allows(g.perm)).map(|r| r.as_str()).collect();
            op["x-permission"] = json!(format!("{:?}", g.perm));
            op["x-roles"] = json!(roles);
            op["x-access"] = json!(access);
        }
        match r.body {
            BodyKind::None => {}
            BodyKind::Json => {
                let schema = d.request.map(|f| f(&mut generator).to_value()).unwrap_or(json!({}));
                op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema}}});
            }
            BodyKind::Csv => {
                op["requestBody"] = json!({"required": true, "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    crate::imports::xlsx::MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
                }});
            }
            BodyKind::Xml => {
                op["requestBody"] =
                    json!({"required": true, "content": {"application/xml": {"schema": {"type": "string"}}}});
            }
        }
        let mut responses = Map::new();
        let ok = match (d.response, d.response_type) {
            (Some(f), _) => {
                json!({"description": "成功", "content": {"application/json": {"schema": f(&mut generator).to_value()}}})
            }
            // GeoJSON and other JSON media types are objects; CSV, HTML and iCalendar are text.
            (None, Some(t)) if t.contains("json") => {
                json!({"description": "成功", "content": {t: {"schema": {"type": "object"}}}})
            }
            (None, Some(t)) => json!({"description": "成功", "content": {t: {"schema": {"type": "string"}}}}),
            (None, None) => json!({"description": "成功（无内容）"}),
        };
        responses.insert(d.status.to_string(), ok);
        let mut errors: Vec<(&str, &str)> = vec![("400", "请求格式错误"), ("404", "未找到")];
        if r.access != Access::Public {
            errors.push(("401", "缺少或无效的令牌"));
            errors.push(("403", "角色或辖区不允许"));
        }
        if r.body != BodyKind::None {
            errors.extend([("413", "请求体过大"), ("415", "内容类型不对"), ("422", "输入未通过校验")]);
        } else if r.method != warp::http::Method::GET && (d.query.is_some() || r.access == Access::Token) {
            // Query values that parse but break a rule; a GET answers those with 400 (see
            // `http::dispatch`).
            errors.push(("422", "输入未通过校验"));
        }
        errors.extend([("408", "请求超时（已回滚）"), ("503", "服务繁忙，请稍后重试")]);
        if r.method != warp::http::Method::GET {
            errors.push(("409", "状态冲突"));
        }
        errors.push(("405", "方法不允许"));
        for (code, desc) in errors {
            responses.insert(
                code.to_string(),
                json!({"description": desc, "content": {"application/problem+json": {"schema": problem.clone().to_value()}}}),
            );
        }
        op["responses"] = Value::Object(responses);
        if matches!(r.access, Access::Token | Access::Scrape) {
            op["security"] = json!([{"bearer": []}]);
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.as_str().to_ascii_lowercase()] = op;
    }
    let mut schemas = Value::Object(generator.take_definitions(true).into_iter().collect());
    dedup_required(&mut schemas);
    no_nul(&mut schemas);
    paths.values_mut().for_each(no_nul);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "yingji 应急准备服务 API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "苏尼特左旗应急预案、应急物资、社会应急力量与应急演练管理。所有 /api/v1 接口（本文档除外）需要 Authorization: Bearer <令牌>。时间以 RFC 3339 表示，默认 Asia/Shanghai (+08:00)。错误以 application/problem+json (RFC 9457) 返回。",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}

/// The schema without its `null` alternative (`Option<T>` fields of query structs).
fn not_null(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Some(Value::Array(any)) = s.get("anyOf")
        && any.len() == 2
        && let Some(other) = any.iter().find(|a| a.get("type") != Some(&json!("null")))
        && any.iter().any(|a| a.get("type") == Some(&json!("null")))
    {
        let mut other = other.clone();
        if let (Some(d), Value::Object(o)) = (s.get("description").cloned(), &mut other) {
            o.entry("description").or_insert(d);
        }
        return other;
    }
    if let Some(Value::Array(types)) = s.get("type")
        && types.iter().any(|t| t == "null")
    {
        let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        s["type"] = if rest.len() == 1 { rest[0].clone() } else { Value::Array(rest) };
    }
    if let Value::Object(o) = &mut s
        && o.get("default") == Some(&Value::Null)
    {
        o.remove("default");
    }
    s
}

/// Removes repeated names from every `required` list (flattened structs can list a field twice,
/// which makes the document invalid).
fn dedup_required(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(req)) = map.get_mut("required") {
                let mut seen = std::collections::HashSet::new();
                req.retain(|x| seen.insert(x.to_string()));
            }
            map.values_mut().for_each(dedup_required);
        }
        Value::Array(items) => items.iter_mut().for_each(dedup_required),
        _ => {}
    }
}

/// Text that means "at least one character that is not white space" (`#[schemars(regex(pattern =
/// r"\S"))]` on a required text field, which the service trims and refuses when blank).
const NOT_BLANK: &str = "\\S";

/// Declares in every free-text schema what the service enforces on all input (`parse_json`,
/// `Ctx::query`, CSV decoding): no NUL character (PostgreSQL cannot store it, so it is refused on
/// both databases). A text without its own pattern gets one excluding NUL; a required text
/// ([`NOT_BLANK`]) gets one that also needs a non-blank character.
fn no_nul(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let is_text = match map.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
                _ => false,
            };
            let free = !map.contains_key("format") && !map.contains_key("enum") && !map.contains_key("const");
            if is_text && free {
                match map.get("pattern").and_then(Value::as_str) {
                    None => {
                        map.insert("pattern".into(), json!("^[^\\u0000]*$"));
                    }
                    Some(NOT_BLANK) => {
                        map.insert("pattern".into(), json!("^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$"));
                    }
                    Some(_) => {}
                }
            }
            map.values_mut().for_each(no_nul);
        }
        Value::Array(items) => items.iter_mut().for_each(no_nul),
        _ => {}
    }
}

/// Follows a `$ref` into the generator's definitions (for flattening query structs).
fn resolve(generator: &schemars::SchemaGenerator, v: &Value) -> Value {
    if let Some(r) = v.get("$ref").and_then(Value::as_str)
        && let Some(name) = r.rsplit('/').next()
        && let Some(def) = generator.definitions().get(name)
    {
        return def.clone();
    }
    v.clone()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A plain HTML page listing every route (no external assets).
pub fn html(router: &Router) -> String {
    let mut rows = String::new();
    for r in router.routes() {
        rows.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(r.doc.tag),
            r.method,
            escape(r.path),
            escape(r.doc.summary),
            escape(r.doc.description),
            escape(&r.access_text())
        ));
    }
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>yingji 接口说明</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}</style></head>\
         <body><h1>yingji 应急准备服务接口</h1><p>机器可读的完整描述见 <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>。除运维接口外均需 <code>Authorization: Bearer &lt;令牌&gt;</code>。</p>\
         <table><tr><th>分组</th><th>方法</th><th>路径</th><th>说明</th><th>详情</th><th>访问</th></tr>\n{rows}</table></body></html>"
    )
}
