//! Self-contained HTML reference page for `GET /docs`.
//!
//! The page is rendered once at start-up from the OpenAPI 3.1 document (as a
//! [`serde_json::Value`]). It has no scripts, no external fonts or style
//! sheets and no network dependencies, so it works on an air-gapped network.
//! Every string taken from the document is HTML-escaped. Document order is
//! kept as long as `serde_json` is built with the `preserve_order` feature.

use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt::Write as _;

/// HTTP methods an OpenAPI path item may hold, in the order used when the
/// document's own key order is not available.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Prefix of a local reference to a component schema.
const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";

/// Maximum number of `$ref` hops followed when resolving a reference.
const MAX_REF_HOPS: usize = 16;

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;background:#fafafa;color:#1f2328;\
font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif;\
line-height:1.5}\
main{max-width:60rem;margin:0 auto;padding:1.5rem 1rem 4rem}\
h1{margin-bottom:0}\
h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2.5rem}\
h3{margin:0 0 .5rem}\
h4{margin:1rem 0 .4rem}\
h5{margin:.8rem 0 .3rem;font-size:.95rem}\
a{color:#0b57d0}\
code,pre,.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,\"Liberation Mono\",monospace}\
pre{background:#f3f4f6;border:1px solid #d0d7de;border-radius:4px;padding:.6rem .8rem;\
overflow-x:auto;font-size:.85rem;line-height:1.4}\
table{border-collapse:collapse;width:100%;margin:.4rem 0;font-size:.92rem}\
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f3f4f6}\
td p,td ul{margin:0}\
.version{color:#57606a;font-size:1rem}\
.op{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:1rem 1.2rem;margin:1.2rem 0}\
.op h3{display:flex;flex-wrap:wrap;align-items:center;gap:.6rem}\
.path{font-size:1.05rem;word-break:break-all}\
.summary{font-weight:600;margin:.2rem 0}\
.method{display:inline-block;min-width:4.5rem;text-align:center;border-radius:4px;\
padding:.1rem .5rem;color:#fff;font-size:.8rem;font-weight:700;letter-spacing:.03em;background:#57606a}\
.method-get{background:#1a7f37}\
.method-post{background:#0b57d0}\
.method-put{background:#9a6700}\
.method-patch{background:#8250df}\
.method-delete{background:#cf222e}\
.badge{border:1px solid #cf222e;color:#cf222e;border-radius:4px;padding:0 .4rem;font-size:.75rem}\
.response{border-left:3px solid #d0d7de;padding-left:.8rem;margin:.6rem 0}\
.status{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-weight:700}\
.status-2{color:#1a7f37}\
.status-4,.status-5{color:#cf222e}\
.toc ul{margin:.2rem 0 .8rem}\
.toc li{margin:.1rem 0}\
.muted{color:#57606a}\
";

/// Escapes `&`, `<`, `>`, `"` and `'` for use in HTML text and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Renders the OpenAPI document as a complete, self-contained HTML5 page.
pub fn render(doc: &Value) -> String {
    let info = doc.get("info");
    let title = info
        .and_then(|i| str_at(i, "title"))
        .filter(|t| !t.trim().is_empty())
        .unwrap_or("API reference");
    let version = info.and_then(|i| str_at(i, "version"));

    let mut anchors = Anchors::default();
    let ops = collect_operations(doc, &mut anchors);
    let groups = group_by_tag(doc, &ops, &mut anchors);

    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // Defence in depth: the page never needs to load anything.
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
    );
    let _ = writeln!(out, "<title>{}</title>", escape(title));
    let _ = write!(out, "<style>{STYLE}</style>\n</head>\n<body>\n<main>\n");

    // Header.
    out.push_str("<header>\n");
    let _ = writeln!(out, "<h1>{}</h1>", escape(title));
    if let Some(v) = version {
        let _ = writeln!(out, "<p class=\"version\">Version {}</p>", escape(v));
    }
    if let Some(d) = info.and_then(|i| str_at(i, "description")) {
        out.push_str(&text_blocks(d));
    }
    out.push_str("</header>\n");

    render_security_schemes(&mut out, doc);
    render_toc(&mut out, doc, &ops, &groups);
    render_operations(&mut out, doc, &ops, &groups);
    render_schemas(&mut out, doc);

    out.push_str("</main>\n</body>\n</html>\n");
    out
}

// ---------------------------------------------------------------------------
// Collection
// ---------------------------------------------------------------------------

/// One operation (method + path) of the document.
struct Operation<'a> {
    method: &'a str,
    path: &'a str,
    op: &'a Map<String, Value>,
    /// Parameters declared on the path item, shared by all its operations.
    path_params: Option<&'a Value>,
    anchor: String,
    tag: String,
}

/// A tag and the indexes (into the operation list) of its operations.
struct TagGroup {
    name: String,
    anchor: String,
    description: Option<String>,
    ops: Vec<usize>,
}

/// Hands out unique, attribute-safe element ids.
#[derive(Default)]
struct Anchors {
    used: HashSet<String>,
}

impl Anchors {
    fn unique(&mut self, prefix: &str, raw: &str) -> String {
        let base = format!("{prefix}{}", sanitize_id(raw));
        let mut candidate = base.clone();
        let mut n = 2;
        while !self.used.insert(candidate.clone()) {
            candidate = format!("{base}-{n}");
            n += 1;
        }
        candidate
    }
}

/// Replaces every character outside `[A-Za-z0-9._-]` with `-`.
fn sanitize_id(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn collect_operations<'a>(doc: &'a Value, anchors: &mut Anchors) -> Vec<Operation<'a>> {
    // Reserve the fixed ids and every schema id up front so that operation
    // and tag anchors can never collide with them.
    for fixed in ["security", "contents", "schemas"] {
        anchors.used.insert(fixed.to_string());
    }
    if let Some(schemas) = component(doc, "schemas") {
        for name in schemas.keys() {
            anchors.used.insert(schema_anchor(name));
        }
    }
    if let Some(schemes) = component(doc, "securitySchemes") {
        for name in schemes.keys() {
            anchors.used.insert(security_anchor(name));
        }
    }

    let mut ops = Vec::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return ops;
    };
    for (path, item) in paths {
        if path.starts_with("x-") {
            continue;
        }
        let Some(item) = resolve(doc, item).as_object() else {
            continue;
        };
        let path_params = item.get("parameters");
        for (key, op) in item {
            let Some(method) = METHODS.iter().copied().find(|m| *m == key) else {
                continue;
            };
            let Some(op) = op.as_object() else {
                continue;
            };
            let tag = op
                .get("tags")
                .and_then(Value::as_array)
                .and_then(|t| t.first())
                .and_then(Value::as_str)
                .filter(|t| !t.trim().is_empty())
                .unwrap_or("other")
                .to_string();
            let anchor = match op.get("operationId").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => anchors.unique("op-", id),
                _ => anchors.unique("op-", &format!("{method}-{}", path.trim_matches('/'))),
            };
            ops.push(Operation {
                method,
                path,
                op,
                path_params,
                anchor,
                tag,
            });
        }
    }
    ops
}

/// Groups operations by tag: tags declared in the top-level `tags` list come
/// first (in that order), then any other tags in order of first use, then
/// "other". Operations keep document order inside a group.
fn group_by_tag(doc: &Value, ops: &[Operation<'_>], anchors: &mut Anchors) -> Vec<TagGroup> {
    let mut order: Vec<String> = Vec::new();
    let mut descriptions: Vec<(String, String)> = Vec::new();
    if let Some(tags) = doc.get("tags").and_then(Value::as_array) {
        for t in tags {
            if let Some(name) = str_at(t, "name") {
                if !order.iter().any(|o| o == name) {
                    order.push(name.to_string());
                }
                if let Some(d) = str_at(t, "description") {
                    descriptions.push((name.to_string(), d.to_string()));
                }
            }
        }
    }
    for op in ops {
        if op.tag != "other" && !order.contains(&op.tag) {
            order.push(op.tag.clone());
        }
    }
    if !order.iter().any(|o| o == "other") {
        order.push("other".to_string());
    }

    order
        .into_iter()
        .filter_map(|name| {
            let members: Vec<usize> = ops
                .iter()
                .enumerate()
                .filter(|(_, o)| o.tag == name)
                .map(|(i, _)| i)
                .collect();
            if members.is_empty() {
                return None;
            }
            let description = descriptions
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| d.clone());
            Some(TagGroup {
                anchor: anchors.unique("tag-", &name),
                name,
                description,
                ops: members,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------

fn render_security_schemes(out: &mut String, doc: &Value) {
    let Some(schemes) = component(doc, "securitySchemes") else {
        return;
    };
    if schemes.is_empty() {
        return;
    }
    out.push_str("<section id=\"security\">\n<h2>Authentication</h2>\n");
    out.push_str(
        "<table>\n<thead><tr><th>Name</th><th>Type</th><th>Details</th>\
         <th>Description</th></tr></thead>\n<tbody>\n",
    );
    for (name, scheme) in schemes {
        let scheme = resolve(doc, scheme);
        let kind = str_at(scheme, "type").unwrap_or("");
        let mut details = Vec::new();
        for key in ["scheme", "bearerFormat", "in", "name", "openIdConnectUrl"] {
            if let Some(v) = str_at(scheme, key) {
                details.push(format!("{key}: <code>{}</code>", escape(v)));
            }
        }
        if let Some(flows) = scheme.get("flows").and_then(Value::as_object) {
            let names: Vec<String> = flows.keys().map(|k| escape(k)).collect();
            if !names.is_empty() {
                details.push(format!("flows: {}", names.join(", ")));
            }
        }
        let description = str_at(scheme, "description")
            .map(text_blocks)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr id=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&security_anchor(name)),
            escape(name),
            escape(kind),
            details.join("<br>"),
            description,
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn render_toc(out: &mut String, doc: &Value, ops: &[Operation<'_>], groups: &[TagGroup]) {
    let has_security = component(doc, "securitySchemes").is_some_and(|m| !m.is_empty());
    let has_schemas = component(doc, "schemas").is_some_and(|m| !m.is_empty());
    if ops.is_empty() && !has_security && !has_schemas {
        return;
    }
    out.push_str("<nav class=\"toc\" id=\"contents\">\n<h2>Contents</h2>\n");
    if has_security {
        out.push_str("<p><a href=\"#security\"><strong>Authentication</strong></a></p>\n");
    }
    for group in groups {
        let _ = write!(
            out,
            "<div><a href=\"#{}\"><strong>{}</strong></a>\n<ul>\n",
            escape(&group.anchor),
            escape(&group.name),
        );
        for &i in &group.ops {
            let op = &ops[i];
            let summary = str_at_map(op.op, "summary")
                .map(|s| format!(" &mdash; {}", escape(s)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "<li><a href=\"#{}\"><code>{} {}</code></a>{}</li>",
                escape(&op.anchor),
                escape(&op.method.to_ascii_uppercase()),
                escape(op.path),
                summary,
            );
        }
        out.push_str("</ul>\n</div>\n");
    }
    if has_schemas {
        out.push_str("<p><a href=\"#schemas\"><strong>Schemas</strong></a></p>\n");
    }
    out.push_str("</nav>\n");
}

fn render_operations(out: &mut String, doc: &Value, ops: &[Operation<'_>], groups: &[TagGroup]) {
    if ops.is_empty() {
        return;
    }
    for group in groups {
        let _ = write!(
            out,
            "<section id=\"{}\">\n<h2>{}</h2>\n",
            escape(&group.anchor),
            escape(&group.name),
        );
        if let Some(d) = &group.description {
            out.push_str(&text_blocks(d));
        }
        for &i in &group.ops {
            render_operation(out, doc, &ops[i]);
        }
        out.push_str("</section>\n");
    }
}

fn render_operation(out: &mut String, doc: &Value, op: &Operation<'_>) {
    let method = op.method.to_ascii_lowercase();
    let _ = write!(
        out,
        "<article class=\"op\" id=\"{}\">\n<h3><span class=\"method method-{}\">{}</span> \
         <span class=\"path\">{}</span>",
        escape(&op.anchor),
        escape(&method),
        escape(&method.to_ascii_uppercase()),
        escape(op.path),
    );
    if op.op.get("deprecated").and_then(Value::as_bool) == Some(true) {
        out.push_str(" <span class=\"badge\">deprecated</span>");
    }
    out.push_str("</h3>\n");

    if let Some(s) = str_at_map(op.op, "summary") {
        let _ = writeln!(out, "<p class=\"summary\">{}</p>", escape(s));
    }
    if let Some(id) = str_at_map(op.op, "operationId") {
        let _ = writeln!(
            out,
            "<p class=\"muted\">Operation ID: <code>{}</code></p>",
            escape(id)
        );
    }
    if let Some(d) = str_at_map(op.op, "description") {
        out.push_str(&text_blocks(d));
    }

    render_parameters(out, doc, op);
    render_request_body(out, doc, op.op);
    render_responses(out, doc, op.op);
    render_operation_security(out, doc, op.op);

    out.push_str("</article>\n");
}

fn render_parameters(out: &mut String, doc: &Value, op: &Operation<'_>) {
    // Path-level parameters first; an operation-level parameter with the same
    // name and location replaces the path-level one.
    let mut params: Vec<&Value> = Vec::new();
    let lists = [op.path_params, op.op.get("parameters")];
    for list in lists.into_iter().flatten() {
        let Some(list) = list.as_array() else {
            continue;
        };
        for p in list {
            let p = resolve(doc, p);
            if !p.is_object() {
                continue;
            }
            let key = (str_at(p, "name"), str_at(p, "in"));
            if let Some(existing) = params
                .iter_mut()
                .find(|e| (str_at(e, "name"), str_at(e, "in")) == key)
            {
                *existing = p;
            } else {
                params.push(p);
            }
        }
    }
    if params.is_empty() {
        return;
    }

    out.push_str("<h4>Parameters</h4>\n<table>\n<thead><tr><th>Name</th><th>In</th>");
    out.push_str("<th>Required</th><th>Type</th><th>Description</th></tr></thead>\n<tbody>\n");
    for p in params {
        let location = str_at(p, "in").unwrap_or("");
        let required =
            location == "path" || p.get("required").and_then(Value::as_bool) == Some(true);
        let ty = match p.get("schema") {
            Some(s) => schema_type(s),
            None => p
                .get("content")
                .and_then(Value::as_object)
                .and_then(|c| c.iter().next())
                .map(|(ct, media)| {
                    let inner = media.get("schema").map(schema_type).unwrap_or_default();
                    format!("{inner} <span class=\"muted\">({})</span>", escape(ct))
                })
                .unwrap_or_default(),
        };
        let mut description = str_at(p, "description")
            .map(text_blocks)
            .unwrap_or_default();
        if p.get("deprecated").and_then(Value::as_bool) == Some(true) {
            description.push_str("<span class=\"badge\">deprecated</span>");
        }
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(str_at(p, "name").unwrap_or("")),
            escape(location),
            if required { "yes" } else { "no" },
            ty,
            description,
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn render_request_body(out: &mut String, doc: &Value, op: &Map<String, Value>) {
    let Some(body) = op.get("requestBody") else {
        return;
    };
    let body = resolve(doc, body);
    if !body.is_object() {
        return;
    }
    out.push_str("<h4>Request body");
    if body.get("required").and_then(Value::as_bool) == Some(true) {
        out.push_str(" <span class=\"muted\">(required)</span>");
    }
    out.push_str("</h4>\n");
    if let Some(d) = str_at(body, "description") {
        out.push_str(&text_blocks(d));
    }
    render_content(out, doc, body.get("content"));
}

fn render_responses(out: &mut String, doc: &Value, op: &Map<String, Value>) {
    let Some(responses) = op.get("responses").and_then(Value::as_object) else {
        return;
    };
    if responses.is_empty() {
        return;
    }
    out.push_str("<h4>Responses</h4>\n");
    for (status, response) in responses {
        if status.starts_with("x-") {
            continue;
        }
        let response = resolve(doc, response);
        let class = status
            .chars()
            .next()
            .filter(char::is_ascii_digit)
            .map(|c| format!(" status-{c}"))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<div class=\"response\"><p><span class=\"status{}\">{}</span>",
            class,
            escape(status),
        );
        let description = str_at(response, "description").unwrap_or("");
        if !description.contains("\n\n") && !description.contains("\n- ") {
            if !description.is_empty() {
                let _ = write!(out, " &mdash; {}", escape(description));
            }
            out.push_str("</p>\n");
        } else {
            out.push_str("</p>\n");
            out.push_str(&text_blocks(description));
        }
        if let Some(headers) = response.get("headers").and_then(Value::as_object) {
            if !headers.is_empty() {
                out.push_str("<p>Headers: ");
                let items: Vec<String> = headers
                    .iter()
                    .map(|(name, h)| {
                        let h = resolve(doc, h);
                        let d = str_at(h, "description")
                            .map(|d| format!(" &mdash; {}", escape(d)))
                            .unwrap_or_default();
                        format!("<code>{}</code>{}", escape(name), d)
                    })
                    .collect();
                out.push_str(&items.join("; "));
                out.push_str("</p>\n");
            }
        }
        render_content(out, doc, response.get("content"));
        out.push_str("</div>\n");
    }
}

/// Renders a `content` map (media type -> media type object).
fn render_content(out: &mut String, doc: &Value, content: Option<&Value>) {
    let Some(content) = content.and_then(Value::as_object) else {
        return;
    };
    for (content_type, media) in content {
        let _ = writeln!(
            out,
            "<h5>Content type <code>{}</code></h5>",
            escape(content_type)
        );
        if let Some(schema) = media.get("schema") {
            render_schema_block(out, schema);
        }
        if let Some(example) = media.get("example") {
            out.push_str("<p>Example:</p>\n");
            out.push_str(&json_block(example));
        }
        if let Some(examples) = media.get("examples").and_then(Value::as_object) {
            for (name, example) in examples {
                let example = resolve(doc, example);
                let _ = write!(out, "<p>Example <em>{}</em>", escape(name));
                if let Some(s) = str_at(example, "summary") {
                    let _ = write!(out, " &mdash; {}", escape(s));
                }
                out.push_str(":</p>\n");
                if let Some(d) = str_at(example, "description") {
                    out.push_str(&text_blocks(d));
                }
                if let Some(value) = example.get("value") {
                    out.push_str(&json_block(value));
                } else if let Some(url) = str_at(example, "externalValue") {
                    let _ = writeln!(out, "<p>External value: <code>{}</code></p>", escape(url));
                }
            }
        }
    }
}

/// Shows a schema: a link when it is a plain `$ref` to a component schema,
/// pretty-printed JSON otherwise.
fn render_schema_block(out: &mut String, schema: &Value) {
    if let Some(target) = str_at(schema, "$ref") {
        let only_ref = schema.as_object().is_some_and(|m| {
            m.keys()
                .all(|k| matches!(k.as_str(), "$ref" | "description" | "summary"))
        });
        if only_ref {
            let _ = writeln!(out, "<p>Schema: {}</p>", ref_link(target));
            if let Some(d) = str_at(schema, "description") {
                out.push_str(&text_blocks(d));
            }
            return;
        }
    }
    out.push_str("<p>Schema:</p>\n");
    out.push_str(&json_block(schema));
}

fn render_operation_security(out: &mut String, doc: &Value, op: &Map<String, Value>) {
    let (requirements, inherited) = match op.get("security") {
        Some(s) => (s, false),
        None => match doc.get("security") {
            Some(s) => (s, true),
            None => return,
        },
    };
    let Some(requirements) = requirements.as_array() else {
        return;
    };
    out.push_str("<h4>Security</h4>\n<p>");
    let alternatives: Vec<String> = requirements
        .iter()
        .filter_map(Value::as_object)
        .map(|req| {
            if req.is_empty() {
                return "none (anonymous access)".to_string();
            }
            let all: Vec<String> = req
                .iter()
                .map(|(name, scopes)| {
                    let scopes: Vec<String> = scopes
                        .as_array()
                        .map(|s| s.iter().filter_map(Value::as_str).map(escape).collect())
                        .unwrap_or_default();
                    let scopes = if scopes.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", scopes.join(", "))
                    };
                    let known =
                        component(doc, "securitySchemes").is_some_and(|s| s.contains_key(name));
                    if known {
                        format!(
                            "<a href=\"#{}\"><code>{}</code></a>{}",
                            escape(&security_anchor(name)),
                            escape(name),
                            scopes
                        )
                    } else {
                        format!("<code>{}</code>{}", escape(name), scopes)
                    }
                })
                .collect();
            all.join(" and ")
        })
        .collect();
    if alternatives.is_empty() {
        out.push_str("None (public endpoint)");
    } else {
        out.push_str(&alternatives.join(" <em>or</em> "));
    }
    if inherited {
        out.push_str(" <span class=\"muted\">(document default)</span>");
    }
    out.push_str("</p>\n");
}

fn render_schemas(out: &mut String, doc: &Value) {
    let Some(schemas) = component(doc, "schemas") else {
        return;
    };
    if schemas.is_empty() {
        return;
    }
    out.push_str("<section id=\"schemas\">\n<h2>Schemas</h2>\n");
    for (name, schema) in schemas {
        let _ = write!(
            out,
            "<section class=\"op\" id=\"{}\">\n<h3><code>{}</code></h3>\n",
            escape(&schema_anchor(name)),
            escape(name),
        );
        out.push_str(&json_block(schema));
        out.push_str("</section>\n");
    }
    out.push_str("</section>\n");
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn str_at_map<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

fn component<'a>(doc: &'a Value, kind: &str) -> Option<&'a Map<String, Value>> {
    doc.get("components")
        .and_then(|c| c.get(kind))
        .and_then(Value::as_object)
}

fn schema_anchor(name: &str) -> String {
    format!("schema-{}", sanitize_id(name))
}

fn security_anchor(name: &str) -> String {
    format!("security-{}", sanitize_id(name))
}

/// Follows local `$ref`s (`#/...`) to the referenced object. Unresolvable or
/// external references are returned as they are.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..MAX_REF_HOPS {
        let Some(target) = str_at(v, "$ref") else {
            break;
        };
        let Some(pointer) = target.strip_prefix('#') else {
            break;
        };
        match doc.pointer(pointer) {
            Some(next) => v = next,
            None => break,
        }
    }
    v
}

/// A link to a component schema section, or the escaped reference text when
/// it does not point at a component schema.
fn ref_link(target: &str) -> String {
    match target.strip_prefix(SCHEMA_REF_PREFIX) {
        Some(name) if !name.is_empty() && !name.contains('/') => format!(
            "<a href=\"#{}\"><code>{}</code></a>",
            escape(&schema_anchor(name)),
            escape(name)
        ),
        _ => format!("<code>{}</code>", escape(target)),
    }
}

/// Short, HTML-ready type description of a parameter schema.
fn schema_type(schema: &Value) -> String {
    if let Some(target) = str_at(schema, "$ref") {
        return ref_link(target);
    }
    let mut ty = match schema.get("type") {
        Some(Value::String(t)) => escape(t),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(escape)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => {
            if schema.get("oneOf").is_some() {
                "oneOf".to_string()
            } else if schema.get("anyOf").is_some() {
                "anyOf".to_string()
            } else if schema.get("allOf").is_some() {
                "allOf".to_string()
            } else {
                String::new()
            }
        }
    };
    let is_array = ty == "array" || ty.starts_with("array |");
    if is_array {
        if let Some(items) = schema.get("items") {
            let inner = schema_type(items);
            if !inner.is_empty() {
                ty = format!("{ty} of {inner}");
            }
        }
    }
    if let Some(f) = str_at(schema, "format") {
        let _ = write!(ty, " <span class=\"muted\">({})</span>", escape(f));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", escape(&v.to_string())))
            .collect();
        if !values.is_empty() {
            let _ = write!(ty, "<br>one of: {}", values.join(", "));
        }
    }
    if let Some(d) = schema.get("default") {
        let _ = write!(ty, "<br>default: <code>{}</code>", escape(&d.to_string()));
    }
    ty
}

/// Plain text to HTML: blocks separated by blank lines become paragraphs,
/// lines starting with `- ` become list items. Everything is escaped.
fn text_blocks(text: &str) -> String {
    let mut out = String::new();
    let mut para: Vec<&str> = Vec::new();
    let mut items: Vec<&str> = Vec::new();

    fn flush_para(out: &mut String, para: &mut Vec<&str>) {
        if !para.is_empty() {
            let _ = writeln!(out, "<p>{}</p>", escape(&para.join("\n")));
            para.clear();
        }
    }
    fn flush_items(out: &mut String, items: &mut Vec<&str>) {
        if !items.is_empty() {
            out.push_str("<ul>\n");
            for item in items.iter() {
                let _ = writeln!(out, "<li>{}</li>", escape(item));
            }
            out.push_str("</ul>\n");
            items.clear();
        }
    }

    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            flush_para(&mut out, &mut para);
            flush_items(&mut out, &mut items);
        } else if let Some(item) = line.trim_start().strip_prefix("- ") {
            flush_para(&mut out, &mut para);
            items.push(item.trim());
        } else {
            flush_items(&mut out, &mut items);
            para.push(trimmed);
        }
    }
    flush_para(&mut out, &mut para);
    flush_items(&mut out, &mut items);
    out
}

/// Pretty-printed JSON inside `<pre><code>`, with component schema `$ref`s
/// turned into links.
fn json_block(v: &Value) -> String {
    let mut out = String::from("<pre><code>");
    write_json(&mut out, v, 0);
    out.push_str("</code></pre>\n");
    out
}

/// Writes `v` in the same layout as `serde_json::to_string_pretty`, HTML-escaped.
fn write_json(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                push_indent(out, indent + 1);
                write_json(out, item, indent + 1);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            push_indent(out, indent);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            for (i, (key, value)) in map.iter().enumerate() {
                push_indent(out, indent + 1);
                out.push_str(&escape(&Value::String(key.clone()).to_string()));
                out.push_str(": ");
                match value.as_str() {
                    Some(target) if key == "$ref" && target.starts_with(SCHEMA_REF_PREFIX) => {
                        let name = &target[SCHEMA_REF_PREFIX.len()..];
                        let _ = write!(
                            out,
                            "<a href=\"#{}\">{}</a>",
                            escape(&schema_anchor(name)),
                            escape(&value.to_string())
                        );
                    }
                    _ => write_json(out, value, indent + 1),
                }
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            push_indent(out, indent);
            out.push('}');
        }
        // Scalars and empty containers: serde_json's compact form is exact.
        other => out.push_str(&escape(&other.to_string())),
    }
}

fn push_indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {
                "title": "paygate",
                "version": "1.2.3",
                "description": "Payment broker.\n\nFeatures:\n- idempotent payments\n- signed callbacks"
            },
            "tags": [{"name": "payments", "description": "Payment lifecycle"}],
            "paths": {
                "/payments": {
                    "post": {
                        "tags": ["payments"],
                        "operationId": "create_payment",
                        "summary": "Create a payment",
                        "description": "Starts a payment with the bank.",
                        "parameters": [{
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": true,
                            "description": "Client supplied key",
                            "schema": {"type": "string", "format": "uuid"}
                        }],
                        "requestBody": {
                            "required": true,
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Foo"},
                                    "example": {"amount": "10.00"}
                                }
                            }
                        },
                        "responses": {
                            "201": {
                                "description": "Created",
                                "content": {
                                    "application/json": {
                                        "schema": {"$ref": "#/components/schemas/Foo"},
                                        "examples": {
                                            "basic": {"summary": "A basic payment", "value": {"id": "p_1"}}
                                        }
                                    }
                                }
                            },
                            "409": {"description": "Conflict"}
                        },
                        "security": [{"bearerAuth": []}]
                    }
                },
                "/health": {
                    "get": {
                        "summary": "Liveness probe",
                        "responses": {"200": {"description": "OK"}},
                        "security": []
                    }
                }
            },
            "components": {
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "Agency token"
                    }
                },
                "schemas": {
                    "Foo": {
                        "type": "object",
                        "required": ["amount"],
                        "properties": {"amount": {"type": "string"}}
                    }
                }
            }
        })
    }

    #[test]
    fn a_small_document_renders_paths_methods_summaries_links_and_schemas() {
        let html = render(&sample());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("<title>paygate</title>"));
        assert!(html.contains("Version 1.2.3"));
        assert!(html.contains("/payments"));
        assert!(html.contains("/health"));
        assert!(html.contains(">POST<"));
        assert!(html.contains(">GET<"));
        assert!(html.contains("Create a payment"));
        assert!(html.contains("Liveness probe"));
        assert!(html.contains("href=\"#schema-Foo\""));
        assert!(html.contains("id=\"schema-Foo\""));
        assert!(html.contains("<h2>Schemas</h2>"));
        assert!(html.contains("&quot;amount&quot;"));
        assert!(html.contains("Idempotency-Key"));
        assert!(html.contains("application/json"));
        assert!(html.contains("A basic payment"));
        assert!(html.contains("&quot;p_1&quot;"));
        assert!(html.ends_with("</html>\n"));
    }

    #[test]
    fn the_table_of_contents_groups_operations_by_first_tag_with_other_as_fallback() {
        let html = render(&sample());
        let payments = html.find("href=\"#tag-payments\"").expect("payments group");
        let other = html.find("href=\"#tag-other\"").expect("other group");
        assert!(payments < other);
        assert!(html.contains("href=\"#op-create_payment\""));
        assert!(html.contains("id=\"op-create_payment\""));
        assert!(html.contains("href=\"#op-get-health\""));
        assert!(html.contains("id=\"op-get-health\""));
        assert!(html.contains("Payment lifecycle"));
    }

    #[test]
    fn security_schemes_and_requirements_are_listed() {
        let html = render(&sample());
        assert!(html.contains("id=\"security-bearerAuth\""));
        assert!(html.contains("scheme: <code>bearer</code>"));
        assert!(html.contains("Agency token"));
        assert!(html.contains("href=\"#security-bearerAuth\""));
        assert!(html.contains("None (public endpoint)"));
    }

    #[test]
    fn text_containing_script_tags_is_escaped_everywhere() {
        let evil = "<script>alert('x')</script>";
        let doc = json!({
            "info": {"title": evil, "version": evil, "description": evil},
            "tags": [{"name": evil, "description": evil}],
            "paths": {
                "/a/<script>": {
                    "get": {
                        "tags": [evil],
                        "operationId": evil,
                        "summary": evil,
                        "description": format!("- {evil}"),
                        "parameters": [{"name": evil, "in": "query", "description": evil,
                                        "schema": {"type": evil, "enum": [evil]}}],
                        "requestBody": {"content": {evil: {"schema": {"$ref": format!("#/components/schemas/{evil}")},
                                                           "example": evil}}},
                        "responses": {evil: {"description": evil}},
                        "security": [{evil: [evil]}]
                    }
                }
            },
            "components": {
                "securitySchemes": {evil: {"type": evil, "description": evil}},
                "schemas": {evil: {"description": evil}}
            }
        });
        let html = render(&doc);
        assert!(
            !html.contains("<script"),
            "unescaped script tag in:\n{html}"
        );
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&#39;x&#39;"));
    }

    #[test]
    fn the_page_loads_nothing_from_the_network() {
        let html = render(&sample());
        assert!(!html.contains("http://"));
        assert!(!html.contains("https://"));
        let lower = html.to_ascii_lowercase();
        assert!(!lower.contains("<script"));
        assert!(!lower.contains("<script src="));
        assert!(!lower.contains("<link rel=\"stylesheet\""));
        assert!(!lower.contains("<link"));
        assert!(!lower.contains("@import"));
        assert!(!lower.contains("url("));
        assert!(lower.contains("<style>"));
    }

    #[test]
    fn urls_on_the_page_are_only_those_from_the_document() {
        let mut doc = sample();
        doc["info"]["description"] = json!("See https://bank.example/spec for details.");
        let html = render(&doc);
        assert!(html.contains("https://bank.example/spec"));
        let without = html.replace("https://bank.example/spec", "");
        assert!(!without.contains("http://"));
        assert!(!without.contains("https://"));
    }

    #[test]
    fn descriptions_become_paragraphs_and_dash_lines_become_list_items() {
        let html = render(&sample());
        assert!(html.contains("<p>Payment broker.</p>"));
        assert!(html.contains("<p>Features:</p>\n<ul>\n<li>idempotent payments</li>\n<li>signed callbacks</li>\n</ul>"));
    }

    #[test]
    fn document_order_of_paths_and_schemas_is_kept() {
        let doc = json!({
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/zeta": {"get": {"responses": {}}},
                "/alpha": {"get": {"responses": {}}}
            },
            "components": {"schemas": {"Zed": {"type": "string"}, "Abc": {"type": "string"}}}
        });
        let html = render(&doc);
        assert!(html.find("/zeta").unwrap() < html.find("/alpha").unwrap());
        assert!(html.find("id=\"schema-Zed\"").unwrap() < html.find("id=\"schema-Abc\"").unwrap());
    }

    #[test]
    fn component_parameters_request_bodies_and_responses_are_resolved() {
        let doc = json!({
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/payments/{id}": {
                    "parameters": [{"$ref": "#/components/parameters/PaymentId"}],
                    "put": {
                        "requestBody": {"$ref": "#/components/requestBodies/Update"},
                        "responses": {"404": {"$ref": "#/components/responses/NotFound"}}
                    }
                }
            },
            "components": {
                "parameters": {"PaymentId": {"name": "id", "in": "path", "description": "Payment id",
                                             "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Id"}}}},
                "requestBodies": {"Update": {"description": "The update", "content": {"application/json": {"schema": {"type": "object"}}}}},
                "responses": {"NotFound": {"description": "No such payment"}},
                "schemas": {"Id": {"type": "string"}}
            }
        });
        let html = render(&doc);
        assert!(html.contains("<code>id</code></td><td>path</td><td>yes</td>"));
        assert!(html.contains("array of <a href=\"#schema-Id\">"));
        assert!(html.contains("The update"));
        assert!(html.contains("No such payment"));
        assert!(html.contains(">404<"));
    }

    #[test]
    fn nested_schema_refs_inside_json_are_links_and_layout_matches_serde_json() {
        let schema = json!({"type": "array", "items": {"$ref": "#/components/schemas/Foo"}, "e": [], "o": {}});
        let block = json_block(&schema);
        assert!(block.contains("<a href=\"#schema-Foo\">&quot;#/components/schemas/Foo&quot;</a>"));

        let plain = json!({"a": [1, {"b": null}], "c": "x&y", "d": {}, "e": []});
        let mut out = String::new();
        write_json(&mut out, &plain, 0);
        let expected = escape(&serde_json::to_string_pretty(&plain).unwrap());
        assert_eq!(out, expected);
    }

    #[test]
    fn an_empty_or_malformed_document_still_renders_a_page() {
        for doc in [
            json!({}),
            json!(null),
            json!({"info": 5, "paths": [1, 2], "components": {"schemas": []}}),
            json!({"paths": {"/x": {"get": {"tags": [], "parameters": "no", "responses": []}}}}),
        ] {
            let html = render(&doc);
            assert!(html.starts_with("<!DOCTYPE html>"));
            assert!(html.contains("<title>API reference</title>"));
            assert!(html.ends_with("</html>\n"));
        }
    }

    #[test]
    fn anchors_are_unique_when_operation_ids_collide() {
        let doc = json!({
            "paths": {
                "/a": {"get": {"operationId": "same", "responses": {}}},
                "/b": {"get": {"operationId": "same", "responses": {}}}
            }
        });
        let html = render(&doc);
        assert!(html.contains("id=\"op-same\""));
        assert!(html.contains("id=\"op-same-2\""));
    }

    #[test]
    fn escape_replaces_the_five_html_special_characters() {
        assert_eq!(escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
        assert_eq!(escape("plain ü"), "plain ü");
    }
}
