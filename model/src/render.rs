//! Rendering message templates for one recipient, in Pinpoint's variable syntax.
//!
//! Pinpoint templates are Handlebars (user guide, "Using message template
//! helpers": "reusable message templates based on the Handlebars.js
//! language"). A message variable is a path into the recipient's data:
//! `{{Address}}`, `{{ChannelType}}`, `{{Id}}`, `{{CreationDate}}`,
//! `{{EffectiveDate}}`, `{{EndpointStatus}}`, `{{OptOut}}`, `{{RequestId}}`,
//! `{{Attributes.X}}`, `{{Demographic.X}}`, `{{Location.X}}`, `{{Metrics.X}}`,
//! `{{User.UserId}}`, `{{User.UserAttributes.X}}` (user guide, "Adding
//! personalized content to message templates", table "Supported attributes").
//! [`context`] builds that data; [`Compiled`] parses a template's parts once and
//! renders them for any number of recipients.
//!
//! Rules, in precedence order (lowest first):
//! 1. the endpoint's own values (or, for a bare address, only `Address` and
//!    `ChannelType`);
//! 2. the template's `DefaultSubstitutions`, which only fill variables the
//!    recipient has no value for ("If an attribute value doesn't exist for a
//!    recipient, Amazon Pinpoint can replace a variable with a default value");
//! 3. the request's `Substitutions`, which "take precedence over all other
//!    variables" (model doc of `AddressConfiguration.Substitutions`).
//!
//! Variables without a value render as nothing ("Amazon Pinpoint omits all text
//! for the variable"). Custom attributes are lists in Pinpoint ("stored as a
//! list, regardless of whether there's a single item or multiple items"), so
//! `{{User.UserAttributes.Colors.[0]}}` and `{{#each User.UserAttributes.Colors}}`
//! work; a bare `{{User.UserAttributes.Colors}}` renders a one-value list as
//! that value and a longer list joined with [`MULTI_VALUE_SEPARATOR`] — the
//! docs show single values rendering bare but say nothing about the separator,
//! so `", "` is herald's choice.
//!
//! HTML parts escape rendered values (`{{{x}}}` does not); plain-text parts
//! (subjects, text bodies, SMS, push, voice) never escape.
//!
//! Templates are user input rendered on the server, so [`check`] refuses the
//! constructs that could make one render unbounded: partials other than the
//! template's own static inline partials, partials that include themselves,
//! blocks nested deeper than [`NESTING_MAX`], `#each` nested deeper than
//! [`EACH_NESTING_MAX`], and templates whose estimated work exceeds
//! [`WORK_MAX`]. Output is capped at [`OUTPUT_BYTES_MAX`] per part.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use handlebars::template::{Parameter, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, JsonRender, JsonTruthy, Output, Path, RenderContext,
    RenderErrorReason, Renderable, ScopedJson, Template, TemplateError,
};
use serde_json::{Map, Value};

use crate::validate::ValidationError;
use crate::wire::EndpointResponse;

/// How rendered values are escaped in one template part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Escape {
    /// HTML-escape values (`{{x}}`); `{{{x}}}` stays raw. For `HtmlPart`.
    Html,
    /// Never escape. For subjects, text bodies, SMS, push, voice and in-app text.
    Plain,
}

/// Joins the values of a multi-value attribute rendered as `{{X}}` (herald's
/// choice; Pinpoint does not document it).
pub const MULTI_VALUE_SEPARATOR: &str = ", ";
/// Deepest nesting of blocks and partial inclusions in a part (herald).
pub const NESTING_MAX: usize = 32;
/// Deepest nesting of `#each` blocks, counted through partials (herald).
pub const EACH_NESTING_MAX: usize = 3;
/// Items one `#each` is assumed to visit when estimating a part's work (herald;
/// attribute lists hold at most 50 values by default).
pub const EACH_ITEMS_ESTIMATE: u64 = 100;
/// Largest estimated work of a part: template elements visited, with every
/// partial expanded and every `#each` body counted [`EACH_ITEMS_ESTIMATE`] times
/// (herald).
pub const WORK_MAX: u64 = 1_000_000;
/// Largest rendered part, in bytes (herald).
pub const OUTPUT_BYTES_MAX: usize = 4 << 20;

/// Helper that renders a bare variable; the space keeps templates from calling it.
const VALUE_HELPER: &str = "herald value";
/// Handlebars' built-in helpers that herald keeps (`log` is removed: rendering
/// does no IO).
const BUILTIN_HELPERS: [&str; 7] = ["if", "unless", "each", "with", "lookup", "raw", "len"];
/// Pinpoint's conditional helpers (user guide, "Using message template
/// helpers"), replacing Handlebars' own `eq`, `gt`, … which lack the
/// `yes=`/`no=` form; `ne` stays as an alias of `neq`.
const CONDITIONAL_HELPERS: [(&str, Cond); 10] = [
    ("and", Cond::And),
    ("or", Cond::Or),
    ("not", Cond::Not),
    ("eq", Cond::Eq),
    ("neq", Cond::Neq),
    ("ne", Cond::Neq),
    ("gt", Cond::Gt),
    ("gte", Cond::Gte),
    ("lt", Cond::Lt),
    ("lte", Cond::Lte),
];

fn is_helper(name: &str) -> bool {
    BUILTIN_HELPERS.contains(&name) || CONDITIONAL_HELPERS.iter().any(|(n, _)| *n == name)
}

// ---------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------

/// The variables of one recipient (see the module doc for precedence).
///
/// * `endpoint`: the recipient's endpoint, or `None` for a bare address
///   (`SendMessages.Addresses`), which then has only `Address` and
///   `ChannelType`;
/// * `address`, `channel`: where the message goes; they set `Address` and
///   `ChannelType` in every case;
/// * `defaults`: the template's parsed `DefaultSubstitutions` (see
///   [`crate::template::parse_default_substitutions`]). Keys are variable names
///   as written in the template (`"User.UserAttributes.FirstName"`); a nested
///   object (`{"User": {"UserAttributes": {"FirstName": "friend"}}}`) means the
///   same. A default fills a variable only when the recipient has no value for
///   it (absent, `null`, `""` or an empty list). A scalar default for a
///   list-valued variable (`Attributes.X`, `User.UserAttributes.X`) becomes a
///   one-value list so `.[0]` and `#each` work on it as on real attributes;
/// * `substitutions`: the request's message variables, already merged (the
///   message's own, then the recipient's). Keys are variable names split on
///   `.`; each value is a list and replaces whatever was there.
pub fn context(
    endpoint: Option<&EndpointResponse>,
    address: &str,
    channel: &str,
    defaults: Option<&Value>,
    substitutions: &BTreeMap<String, Vec<String>>,
) -> Value {
    let mut root = match endpoint.map(serde_json::to_value) {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::new(),
    };
    root.insert("Address".to_string(), Value::String(address.to_string()));
    root.insert(
        "ChannelType".to_string(),
        Value::String(channel.to_string()),
    );
    if let Some(Value::Object(defaults)) = defaults {
        let mut path = Vec::new();
        for (key, value) in defaults {
            fill_default(&mut root, &mut path, key, value);
        }
    }
    for (key, values) in substitutions {
        let segs = segments(key);
        if segs.is_empty() {
            continue;
        }
        let list = Value::Array(values.iter().cloned().map(Value::String).collect());
        set_path(&mut root, &segs, list);
    }
    Value::Object(root)
}

fn segments(key: &str) -> Vec<&str> {
    key.split('.').filter(|s| !s.is_empty()).collect()
}

/// No value for the recipient: a default may fill it.
fn is_blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// `Attributes.X` and `User.UserAttributes.X` hold lists.
fn is_list_valued(path: &[String]) -> bool {
    matches!(path, [a, _] if a == "Attributes")
        || matches!(path, [u, ua, _] if u == "User" && ua == "UserAttributes")
}

fn fill_default(map: &mut Map<String, Value>, path: &mut Vec<String>, key: &str, value: &Value) {
    let segs = segments(key);
    if segs.is_empty() {
        return;
    }
    let depth = path.len();
    let mut cur = map;
    for seg in &segs[..segs.len() - 1] {
        path.push((*seg).to_string());
        let slot = cur
            .entry((*seg).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if is_blank(Some(slot)) {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(inner) => cur = inner,
            // a value already sits on the way: the recipient has data here
            _ => {
                path.truncate(depth);
                return;
            }
        }
    }
    let last = segs[segs.len() - 1];
    path.push(last.to_string());
    match value {
        Value::Object(inner) => {
            let slot = cur
                .entry(last.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if is_blank(Some(slot)) {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(slot) = slot {
                for (k, v) in inner {
                    fill_default(slot, path, k, v);
                }
            }
        }
        _ if is_blank(cur.get(last)) => {
            let v = match value {
                Value::Array(_) | Value::Null => value.clone(),
                Value::String(_) if is_list_valued(path) => Value::Array(vec![value.clone()]),
                _ if is_list_valued(path) => Value::Array(vec![Value::String(value.render())]),
                _ => value.clone(),
            };
            cur.insert(last.to_string(), v);
        }
        _ => {}
    }
    path.truncate(depth);
}

fn set_path(map: &mut Map<String, Value>, segs: &[&str], value: Value) {
    let mut cur = map;
    for seg in &segs[..segs.len() - 1] {
        let slot = cur
            .entry((*seg).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(inner) = slot else {
            unreachable!("just made an object")
        };
        cur = inner;
    }
    cur.insert(segs[segs.len() - 1].to_string(), value);
}

/// One recipient's variables, ready to render many parts without copying.
#[derive(Debug, Clone)]
pub struct Vars(Context);

impl Vars {
    pub fn new(value: Value) -> Vars {
        Vars(Context::from(value))
    }

    pub fn value(&self) -> &Value {
        self.0.data()
    }
}

impl From<Value> for Vars {
    fn from(value: Value) -> Vars {
        Vars::new(value)
    }
}

// ---------------------------------------------------------------------------
// Compile
// ---------------------------------------------------------------------------

/// Why a part failed to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("no template part named {0}")]
    UnknownPart(String),
    #[error("{part} does not render{}: {reason}", at(*line, *column))]
    Failed {
        part: String,
        line: Option<usize>,
        column: Option<usize>,
        reason: String,
    },
    #[error("{part} renders to more than {max} bytes")]
    TooLarge { part: String, max: usize },
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

/// The parts of one template, parsed once; render them for many recipients.
///
/// Holds one Handlebars registry (helpers only: parts are never registered, so
/// no part can include another). `Send + Sync`: share it behind an `Arc`.
pub struct Compiled {
    registry: Handlebars<'static>,
    parts: BTreeMap<String, (Template, usize)>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("parts", &self.parts.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Compiled {
    /// Parse `(name, source, escape)` parts. The error names the first part that
    /// does not parse (see [`check`]); part names must be distinct.
    pub fn compile<N: AsRef<str>, S: AsRef<str>>(
        parts: &[(N, S, Escape)],
    ) -> Result<Compiled, ValidationError> {
        let mut registry = Handlebars::new();
        registry.unregister_helper("log");
        registry.register_helper(VALUE_HELPER, Box::new(ValueHelper));
        for (name, cond) in CONDITIONAL_HELPERS {
            registry.register_helper(name, Box::new(cond));
        }
        let mut compiled = BTreeMap::new();
        for (name, source, escape) in parts {
            let (name, source) = (name.as_ref(), source.as_ref());
            if compiled.contains_key(name) {
                return Err(ValidationError(format!("duplicate template part {name}")));
            }
            let mut template = parse_checked(name, source)?;
            rewrite(&mut template, *escape);
            compiled.insert(name.to_string(), (template, source.len()));
        }
        Ok(Compiled {
            registry,
            parts: compiled,
        })
    }

    /// Names of the parts, sorted.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.parts.keys().map(String::as_str)
    }

    pub fn has_part(&self, part: &str) -> bool {
        self.parts.contains_key(part)
    }

    /// Render `part` with `ctx` (as built by [`context`]). Copies `ctx`; to
    /// render several parts for one recipient, build [`Vars`] once and use
    /// [`Compiled::render_vars`].
    pub fn render(&self, part: &str, ctx: &Value) -> Result<String, RenderError> {
        self.render_vars(part, &Vars::new(ctx.clone()))
    }

    /// Render `part` for one recipient.
    pub fn render_vars(&self, part: &str, vars: &Vars) -> Result<String, RenderError> {
        let (template, source_len) = self
            .parts
            .get(part)
            .ok_or_else(|| RenderError::UnknownPart(part.to_string()))?;
        let mut out = Capped {
            buf: String::with_capacity(source_len + source_len / 4 + 16),
            max: OUTPUT_BYTES_MAX,
            over: false,
        };
        let mut rc = RenderContext::new(None);
        match template.render(&self.registry, &vars.0, &mut rc, &mut out) {
            Ok(()) => Ok(out.buf),
            Err(_) if out.over => Err(RenderError::TooLarge {
                part: part.to_string(),
                max: OUTPUT_BYTES_MAX,
            }),
            Err(e) => Err(RenderError::Failed {
                part: part.to_string(),
                line: e.line_no,
                column: e.column_no,
                reason: e.reason().to_string(),
            }),
        }
    }
}

/// A string sink that refuses to grow past `max` bytes.
struct Capped {
    buf: String,
    max: usize,
    over: bool,
}

impl Output for Capped {
    fn write(&mut self, seg: &str) -> Result<(), std::io::Error> {
        if self.buf.len() + seg.len() > self.max {
            self.over = true;
            return Err(std::io::Error::other("output too large"));
        }
        self.buf.push_str(seg);
        Ok(())
    }
}

/// Renders a bare `{{path}}`: lists as their values joined, everything else as
/// Handlebars would. Escaping follows the part (see [`rewrite`]).
struct ValueHelper;

impl HelperDef for ValueHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, handlebars::RenderError> {
        let Some(param) = h.param(0) else {
            return Ok(ScopedJson::Missing);
        };
        if param.is_value_missing() {
            return Ok(ScopedJson::Missing);
        }
        Ok(ScopedJson::Derived(match param.value() {
            Value::Array(items) => Value::String(join_values(items)),
            other => other.clone(),
        }))
    }
}

fn join_values(items: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(MULTI_VALUE_SEPARATOR);
        }
        match v {
            Value::String(s) => out.push_str(s),
            Value::Array(inner) => out.push_str(&join_values(inner)),
            other => {
                let _ = write!(out, "{}", other.render());
            }
        }
    }
    out
}

/// Pinpoint's conditional helpers. Block form renders the block or its
/// `{{else}}`; inline form renders the `yes=`/`no=` value, or `true`/`false`
/// without them; as a subexpression the result is a boolean. `and`, `or`,
/// `not` test truthiness; `eq`/`neq` compare values; `gt`, `gte`, `lt`, `lte`
/// compare numerically when both sides are numbers or numeric strings, else as
/// strings. A one-value list (an attribute without `.[0]`) counts as its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cond {
    And,
    Or,
    Not,
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cond {
    /// (fewest, most) parameters.
    fn arity(self) -> (usize, usize) {
        match self {
            Cond::And | Cond::Or => (2, usize::MAX),
            Cond::Not => (1, 1),
            _ => (2, 2),
        }
    }

    fn arity_text(self) -> String {
        match self.arity() {
            (min, max) if min == max => min.to_string(),
            (min, _) => format!("at least {min}"),
        }
    }

    fn eval(self, h: &Helper<'_>) -> Result<bool, handlebars::RenderError> {
        let (min, max) = self.arity();
        let n = h.params().len();
        if n < min || n > max {
            return Err(RenderErrorReason::Other(format!(
                "{} takes {} parameters, not {n}",
                h.name(),
                self.arity_text()
            ))
            .into());
        }
        let values: Vec<&Value> = h.params().iter().map(|p| unwrap_one(p.value())).collect();
        Ok(match self {
            Cond::And => values.iter().all(|v| v.is_truthy(false)),
            Cond::Or => values.iter().any(|v| v.is_truthy(false)),
            Cond::Not => !values[0].is_truthy(false),
            Cond::Eq => loosely_equal(values[0], values[1]),
            Cond::Neq => !loosely_equal(values[0], values[1]),
            Cond::Gt => compare(values[0], values[1]).is_gt(),
            Cond::Gte => compare(values[0], values[1]).is_ge(),
            Cond::Lt => compare(values[0], values[1]).is_lt(),
            Cond::Lte => compare(values[0], values[1]).is_le(),
        })
    }
}

fn unwrap_one(v: &Value) -> &Value {
    match v {
        Value::Array(items) if items.len() == 1 => &items[0],
        other => other,
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_)) => {
            a.render() == b.render()
        }
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a.render().cmp(&b.render()),
    }
}

impl HelperDef for Cond {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, handlebars::RenderError> {
        Ok(ScopedJson::Derived(Value::Bool(self.eval(h)?)))
    }

    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> handlebars::HelperResult {
        let value = self.eval(h)?;
        if h.is_block() {
            let branch = if value { h.template() } else { h.inverse() };
            return match branch {
                Some(t) => t.render(r, ctx, rc, out),
                None => Ok(()),
            };
        }
        let chosen = h.hash_get(if value { "yes" } else { "no" });
        let text = match chosen {
            Some(v) => v.value().render(),
            None => value.to_string(),
        };
        if rc.is_disable_escape() {
            out.write(&text)?;
        } else {
            out.write(&r.get_escape_fn()(&text))?;
        }
        Ok(())
    }
}

/// Route bare variables through [`ValueHelper`]; in plain parts turn every
/// `{{x}}` into `{{{x}}}` so nothing is escaped.
fn rewrite(template: &mut Template, escape: Escape) {
    for element in &mut template.elements {
        rewrite_element(element, escape);
    }
}

fn rewrite_element(element: &mut TemplateElement, escape: Escape) {
    match element {
        TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
            let bare = !ht.block && ht.params.is_empty() && ht.hash.is_empty();
            if bare {
                if let Parameter::Path(path) = &ht.name {
                    if !is_helper(path_raw(path)) {
                        let path = Parameter::Path(path.clone());
                        ht.params.push(path);
                        ht.name = Parameter::Name(VALUE_HELPER.to_string());
                    }
                }
            }
            if escape == Escape::Plain {
                if let TemplateElement::Expression(_) = element {
                    let taken = std::mem::replace(element, TemplateElement::Comment(String::new()));
                    if let TemplateElement::Expression(ht) = taken {
                        *element = TemplateElement::HtmlExpression(ht);
                    }
                }
            }
        }
        TemplateElement::HelperBlock(ht) => {
            if let Some(t) = ht.template.as_mut() {
                rewrite(t, escape);
            }
            if let Some(t) = ht.inverse.as_mut() {
                rewrite(t, escape);
            }
        }
        TemplateElement::DecoratorBlock(dt) | TemplateElement::PartialBlock(dt) => {
            if let Some(t) = dt.template.as_mut() {
                rewrite(t, escape);
            }
        }
        _ => {}
    }
}

fn path_raw(path: &Path) -> &str {
    match path {
        Path::Relative((_, raw)) => raw,
        Path::Local((_, _, raw)) => raw,
    }
}

// ---------------------------------------------------------------------------
// Check
// ---------------------------------------------------------------------------

/// Parse one part and check it can be rendered safely (see the module doc).
/// Errors name the part and, where known, the position:
/// `HtmlPart does not parse at line 3, column 5: ...`.
pub fn check(part: &str, source: &str) -> Result<(), ValidationError> {
    parse_checked(part, source).map(|_| ())
}

fn parse_checked(part: &str, source: &str) -> Result<Template, ValidationError> {
    let template =
        Template::compile_with_name(source, part.to_string()).map_err(|e| parse_error(part, &e))?;
    let mut inline = BTreeMap::new();
    collect(part, &template, &mut inline)?;
    let mut analysis = Analysis {
        part,
        inline,
        done: BTreeMap::new(),
        visiting: BTreeSet::new(),
    };
    let cost = analysis.template(&template)?;
    if cost.depth > NESTING_MAX {
        return Err(ValidationError(format!(
            "{part} nests blocks and partials {} deep, more than {NESTING_MAX}",
            cost.depth
        )));
    }
    if cost.each_depth > EACH_NESTING_MAX {
        return Err(ValidationError(format!(
            "{part} nests #each {} deep, more than {EACH_NESTING_MAX}",
            cost.each_depth
        )));
    }
    if cost.work > WORK_MAX {
        return Err(ValidationError(format!(
            "{part} is too expensive to render (estimated work {} is over {WORK_MAX})",
            cost.work
        )));
    }
    Ok(template)
}

fn parse_error(part: &str, e: &TemplateError) -> ValidationError {
    let reason = e.reason().to_string();
    match e.pos() {
        Some((line, column)) => ValidationError(format!(
            "{part} does not parse at line {line}, column {column}: {reason}"
        )),
        None => ValidationError(format!("{part} does not parse: {reason}")),
    }
}

fn rejected(
    part: &str,
    template: &Template,
    idx: usize,
    why: impl std::fmt::Display,
) -> ValidationError {
    match template.mapping.get(idx) {
        Some(m) => ValidationError(format!(
            "{part} is not supported at line {}, column {}: {why}",
            m.0, m.1
        )),
        None => ValidationError(format!("{part} is not supported: {why}")),
    }
}

/// Collect inline partial definitions (name → bodies) and refuse the
/// decorators and partial forms herald does not render.
fn collect<'t>(
    part: &str,
    template: &'t Template,
    inline: &mut BTreeMap<String, Vec<&'t Template>>,
) -> Result<(), ValidationError> {
    for (idx, element) in template.elements.iter().enumerate() {
        let at = |why: String| rejected(part, template, idx, why);
        match element {
            TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                let bare = ht.params.is_empty() && ht.hash.is_empty();
                if !bare {
                    helper_call(&ht.name, ht.params.len()).map_err(at)?;
                }
                arguments(&ht.params, ht.hash.values()).map_err(at)?;
            }
            TemplateElement::HelperBlock(ht) => {
                helper_call(&ht.name, ht.params.len()).map_err(at)?;
                arguments(&ht.params, ht.hash.values()).map_err(at)?;
                for t in [ht.template.as_ref(), ht.inverse.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    collect(part, t, inline)?;
                }
            }
            TemplateElement::DecoratorBlock(dt) => {
                let is_inline = matches!(&dt.name, Parameter::Name(n) if n == "inline");
                if !is_inline {
                    return Err(rejected(
                        part,
                        template,
                        idx,
                        "decorators other than inline",
                    ));
                }
                let name = match dt.params.first() {
                    Some(Parameter::Literal(Value::String(s))) => s.clone(),
                    _ => {
                        return Err(rejected(
                            part,
                            template,
                            idx,
                            "an inline partial needs a quoted name",
                        ))
                    }
                };
                if let Some(body) = dt.template.as_ref() {
                    collect(part, body, inline)?;
                    inline.entry(name).or_default().push(body);
                }
            }
            TemplateElement::DecoratorExpression(_) => {
                return Err(rejected(
                    part,
                    template,
                    idx,
                    "decorators other than inline",
                ));
            }
            TemplateElement::PartialBlock(_) => {
                return Err(rejected(
                    part,
                    template,
                    idx,
                    "partial blocks ({{#> name}})",
                ));
            }
            TemplateElement::PartialExpression(dt) => match partial_name(&dt.name) {
                Some(n) if !n.starts_with('@') => {
                    arguments(&dt.params, dt.hash.values()).map_err(at)?;
                }
                Some(n) => {
                    return Err(rejected(part, template, idx, format!("the partial {n}")));
                }
                None => {
                    return Err(rejected(part, template, idx, "dynamic partial names"));
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// A call of a helper herald has, with a number of parameters it accepts.
fn helper_call(name: &Parameter, params: usize) -> Result<(), String> {
    let name = match name {
        Parameter::Name(n) => n.as_str(),
        Parameter::Path(p) => path_raw(p),
        _ => return Err("computed helper names".to_string()),
    };
    if !is_helper(name) {
        return Err(format!("unknown helper {name:?}"));
    }
    if let Some((_, cond)) = CONDITIONAL_HELPERS.iter().find(|(n, _)| *n == name) {
        let (min, max) = cond.arity();
        if params < min || params > max {
            return Err(format!(
                "{name} takes {} parameters, not {params}",
                cond.arity_text()
            ));
        }
    }
    Ok(())
}

/// Subexpressions among a call's arguments are helper calls too.
fn arguments<'p>(
    params: &'p [Parameter],
    hash: impl Iterator<Item = &'p Parameter>,
) -> Result<(), String> {
    for p in params.iter().chain(hash) {
        if let Parameter::Subexpression(sub) = p {
            match sub.element.as_ref() {
                TemplateElement::Expression(ht) => {
                    helper_call(&ht.name, ht.params.len())?;
                    arguments(&ht.params, ht.hash.values())?;
                }
                _ => return Err("unexpected subexpression".to_string()),
            }
        }
    }
    Ok(())
}

/// The name a static partial reference looks up (`{{> name}}`, `{{> [a b]}}`
/// by its raw text, as Handlebars does); `None` for `{{> (expr)}}`.
fn partial_name(name: &Parameter) -> Option<&str> {
    match name {
        Parameter::Name(n) => Some(n),
        Parameter::Path(p) => Some(path_raw(p)),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    work: u64,
    depth: usize,
    each_depth: usize,
}

impl Cost {
    fn then(self, other: Cost) -> Cost {
        Cost {
            work: self.work.saturating_add(other.work),
            depth: self.depth.max(other.depth),
            each_depth: self.each_depth.max(other.each_depth),
        }
    }
}

struct Analysis<'a, 't> {
    part: &'a str,
    inline: BTreeMap<String, Vec<&'t Template>>,
    done: BTreeMap<String, Cost>,
    visiting: BTreeSet<String>,
}

impl<'t> Analysis<'_, 't> {
    fn template(&mut self, template: &'t Template) -> Result<Cost, ValidationError> {
        let mut total = Cost::default();
        for (idx, element) in template.elements.iter().enumerate() {
            let cost = match element {
                TemplateElement::HelperBlock(ht) => {
                    let body = match ht.template.as_ref() {
                        Some(t) => self.template(t)?,
                        None => Cost::default(),
                    };
                    let inverse = match ht.inverse.as_ref() {
                        Some(t) => self.template(t)?,
                        None => Cost::default(),
                    };
                    let is_each = matches!(&ht.name, Parameter::Name(n) if n == "each");
                    let (body_work, each_depth) = if is_each {
                        (
                            body.work.saturating_mul(EACH_ITEMS_ESTIMATE),
                            body.each_depth + 1,
                        )
                    } else {
                        (body.work, body.each_depth)
                    };
                    Cost {
                        work: 1u64.saturating_add(body_work).saturating_add(inverse.work),
                        depth: 1 + body.depth.max(inverse.depth),
                        each_depth: each_depth.max(inverse.each_depth),
                    }
                }
                TemplateElement::PartialExpression(dt) => {
                    let Some(name) = partial_name(&dt.name) else {
                        unreachable!("collect refused dynamic partials")
                    };
                    let inner = self.partial(template, idx, name)?;
                    Cost {
                        work: inner.work.saturating_add(1),
                        depth: inner.depth + 1,
                        each_depth: inner.each_depth,
                    }
                }
                _ => Cost {
                    work: 1,
                    depth: 0,
                    each_depth: 0,
                },
            };
            total = total.then(cost);
        }
        Ok(total)
    }

    fn partial(&mut self, at: &Template, idx: usize, name: &str) -> Result<Cost, ValidationError> {
        if let Some(cost) = self.done.get(name) {
            return Ok(*cost);
        }
        let Some(bodies) = self.inline.get(name).cloned() else {
            return Err(rejected(
                self.part,
                at,
                idx,
                format!("the partial {name:?} is not defined in this part"),
            ));
        };
        if !self.visiting.insert(name.to_string()) {
            return Err(rejected(
                self.part,
                at,
                idx,
                format!("the partial {name:?} includes itself"),
            ));
        }
        let mut cost = Cost::default();
        for body in bodies {
            let c = self.template(body)?;
            cost = Cost {
                work: cost.work.max(c.work),
                depth: cost.depth.max(c.depth),
                each_depth: cost.each_depth.max(c.each_depth),
            };
        }
        self.visiting.remove(name);
        self.done.insert(name.to_string(), cost);
        Ok(cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EndpointDemographic, EndpointLocation, EndpointUser};
    use proptest::prelude::*;
    use serde_json::json;

    fn one(source: &str, escape: Escape) -> Compiled {
        Compiled::compile(&[("Body", source, escape)]).unwrap()
    }

    fn render(source: &str, escape: Escape, ctx: &Value) -> String {
        one(source, escape).render("Body", ctx).unwrap()
    }

    fn subs(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn endpoint() -> EndpointResponse {
        EndpointResponse {
            address: Some("sofia@example.com".into()),
            application_id: Some("app-1".into()),
            attributes: Some(BTreeMap::from([
                ("Colors".to_string(), vec!["red".into(), "blue".into()]),
                ("Plan".to_string(), vec!["gold".into()]),
            ])),
            channel_type: Some("EMAIL".into()),
            cohort_id: Some("42".into()),
            creation_date: Some("2019-06-30T11:45:25.220Z".into()),
            demographic: Some(EndpointDemographic {
                app_version: Some("1.2".into()),
                locale: Some("en_US".into()),
                make: Some("apple".into()),
                model: Some("iPhone".into()),
                model_version: Some("15".into()),
                platform: Some("ios".into()),
                platform_version: Some("17.1".into()),
                timezone: Some("America/Los_Angeles".into()),
            }),
            effective_date: Some("2019-08-23T10:54:35.220Z".into()),
            endpoint_status: Some("ACTIVE".into()),
            id: Some("ep-1".into()),
            location: Some(EndpointLocation {
                city: Some("Los Angeles".into()),
                country: Some("US".into()),
                latitude: Some(34.1),
                longitude: Some(-118.2),
                postal_code: Some("90001".into()),
                region: Some("CA".into()),
            }),
            metrics: Some(BTreeMap::from([("Sessions".to_string(), 3.0)])),
            opt_out: Some("NONE".into()),
            request_id: Some("req-9".into()),
            user: Some(EndpointUser {
                user_attributes: Some(BTreeMap::from([(
                    "FirstName".to_string(),
                    vec!["Sofia".into()],
                )])),
                user_id: Some("user-7".into()),
            }),
        }
    }

    fn ep_ctx() -> Value {
        context(
            Some(&endpoint()),
            "sofia@example.com",
            "EMAIL",
            None,
            &BTreeMap::new(),
        )
    }

    #[test]
    fn every_variable_family_renders_from_an_endpoint() {
        let ctx = ep_ctx();
        let cases = [
            ("{{Address}}", "sofia@example.com"),
            ("{{ChannelType}}", "EMAIL"),
            ("{{Id}}", "ep-1"),
            ("{{CreationDate}}", "2019-06-30T11:45:25.220Z"),
            ("{{EffectiveDate}}", "2019-08-23T10:54:35.220Z"),
            ("{{EndpointStatus}}", "ACTIVE"),
            ("{{OptOut}}", "NONE"),
            ("{{RequestId}}", "req-9"),
            ("{{Attributes.Plan}}", "gold"),
            ("{{Attributes.Colors.[1]}}", "blue"),
            ("{{User.UserId}}", "user-7"),
            ("{{User.UserAttributes.FirstName}}", "Sofia"),
            ("{{User.UserAttributes.FirstName.[0]}}", "Sofia"),
            ("{{Demographic.AppVersion}}", "1.2"),
            ("{{Demographic.Locale}}", "en_US"),
            ("{{Demographic.Make}}", "apple"),
            ("{{Demographic.Model}}", "iPhone"),
            ("{{Demographic.ModelVersion}}", "15"),
            ("{{Demographic.Platform}}", "ios"),
            ("{{Demographic.PlatformVersion}}", "17.1"),
            ("{{Demographic.Timezone}}", "America/Los_Angeles"),
            ("{{Location.City}}", "Los Angeles"),
            ("{{Location.Country}}", "US"),
            ("{{Location.Latitude}}", "34.1"),
            ("{{Location.Longitude}}", "-118.2"),
            ("{{Location.PostalCode}}", "90001"),
            ("{{Location.Region}}", "CA"),
            ("{{Metrics.Sessions}}", "3.0"),
        ];
        for (source, want) in cases {
            assert_eq!(render(source, Escape::Plain, &ctx), want, "{source}");
        }
    }

    #[test]
    fn a_bare_address_has_only_address_and_channel() {
        let ctx = context(None, "+15555550100", "SMS", None, &BTreeMap::new());
        assert_eq!(
            ctx,
            json!({"Address": "+15555550100", "ChannelType": "SMS"})
        );
        let out = render(
            "to {{Address}} via {{ChannelType}}; id={{Id}} name={{User.UserAttributes.FirstName}}",
            Escape::Plain,
            &ctx,
        );
        assert_eq!(out, "to +15555550100 via SMS; id= name=");
    }

    #[test]
    fn multi_value_attributes_join_index_and_iterate() {
        let ctx = ep_ctx();
        assert_eq!(
            render("{{Attributes.Colors}}", Escape::Plain, &ctx),
            "red, blue"
        );
        assert_eq!(
            render(
                "{{#each Attributes.Colors}}<li>{{@index}}:{{this}}</li>{{else}}none{{/each}}",
                Escape::Html,
                &ctx
            ),
            "<li>0:red</li><li>1:blue</li>"
        );
        assert_eq!(
            render(
                "{{#each Attributes.Nope}}x{{else}}none{{/each}}",
                Escape::Plain,
                &ctx
            ),
            "none"
        );
        assert_eq!(
            render(
                "{{#if User.UserAttributes.FirstName.[0]}}Hello {{User.UserAttributes.FirstName.[0]}}{{else}}Hello{{/if}}",
                Escape::Plain,
                &ctx
            ),
            "Hello Sofia"
        );
    }

    #[test]
    fn defaults_fill_only_missing_values() {
        let defaults = json!({
            "User.UserAttributes.FirstName": "friend",
            "User.UserAttributes.Activity": "running",
            "Attributes.Plan": "basic",
            "Location": {"City": "Nowhere", "Country": "ZZ"},
            "Coupon": "SAVE10"
        });
        let ctx = context(
            Some(&endpoint()),
            "sofia@example.com",
            "EMAIL",
            Some(&defaults),
            &BTreeMap::new(),
        );
        let src = "{{User.UserAttributes.FirstName}}|{{User.UserAttributes.Activity}}|{{User.UserAttributes.Activity.[0]}}|{{Attributes.Plan}}|{{Location.City}}|{{Coupon}}";
        assert_eq!(
            render(src, Escape::Plain, &ctx),
            "Sofia|running|running|gold|Los Angeles|SAVE10"
        );

        let bare = context(
            None,
            "a@example.com",
            "EMAIL",
            Some(&defaults),
            &BTreeMap::new(),
        );
        assert_eq!(
            render(src, Escape::Plain, &bare),
            "friend|running|running|basic|Nowhere|SAVE10"
        );
        // a default never replaces the actual address
        let d = json!({"Address": "default@example.com"});
        let ctx = context(None, "a@example.com", "EMAIL", Some(&d), &BTreeMap::new());
        assert_eq!(render("{{Address}}", Escape::Plain, &ctx), "a@example.com");
    }

    #[test]
    fn blank_values_take_the_default() {
        let mut ep = endpoint();
        ep.user
            .as_mut()
            .unwrap()
            .user_attributes
            .as_mut()
            .unwrap()
            .insert("FirstName".into(), vec![]);
        let defaults = json!({"User.UserAttributes.FirstName": "friend"});
        let ctx = context(Some(&ep), "x", "EMAIL", Some(&defaults), &BTreeMap::new());
        assert_eq!(
            render("{{User.UserAttributes.FirstName}}", Escape::Plain, &ctx),
            "friend"
        );
    }

    #[test]
    fn substitutions_override_everything() {
        let defaults = json!({"User.UserAttributes.FirstName": "friend", "Coupon": "SAVE10"});
        let s = subs(&[
            ("User.UserAttributes.FirstName", &["Alejandro"]),
            ("Coupon", &["VIP", "EXTRA"]),
            ("Attributes.Colors", &["green"]),
            ("OrderId", &["o-1"]),
        ]);
        let ctx = context(
            Some(&endpoint()),
            "sofia@example.com",
            "EMAIL",
            Some(&defaults),
            &s,
        );
        assert_eq!(
            render(
                "{{User.UserAttributes.FirstName}}|{{Coupon}}|{{Coupon.[1]}}|{{Attributes.Colors}}|{{OrderId}}|{{Attributes.Plan}}",
                Escape::Plain,
                &ctx
            ),
            "Alejandro|VIP, EXTRA|EXTRA|green|o-1|gold"
        );
        // a substitution through a scalar replaces it
        let s = subs(&[("Address.Local", &["x"])]);
        let ctx = context(None, "a@example.com", "EMAIL", None, &s);
        assert_eq!(render("{{Address.Local}}", Escape::Plain, &ctx), "x");
        // empty keys and empty segments are ignored or skipped
        let s = subs(&[("", &["x"]), ("..A..B", &["y"])]);
        let ctx = context(None, "a", "EMAIL", None, &s);
        assert_eq!(render("{{A.B}}", Escape::Plain, &ctx), "y");
    }

    #[test]
    fn html_parts_escape_and_text_parts_do_not() {
        let s = subs(&[("Name", &["<b>Tom & \"Jerry\"</b>"]), ("L", &["<i>", "&"])]);
        let ctx = context(None, "a@example.com", "EMAIL", None, &s);
        let c = Compiled::compile(&[
            ("Subject", "Hi {{Name}}", Escape::Plain),
            (
                "HtmlPart",
                "<p>{{Name}} {{{Name}}} {{L}} {{#each L}}[{{this}}]{{/each}}</p>",
                Escape::Html,
            ),
            (
                "TextPart",
                "{{Name}} {{#each L}}[{{this}}]{{/each}} {{lookup L 0}}",
                Escape::Plain,
            ),
        ])
        .unwrap();
        let vars = Vars::new(ctx);
        assert_eq!(
            c.render_vars("Subject", &vars).unwrap(),
            "Hi <b>Tom & \"Jerry\"</b>"
        );
        assert_eq!(
            c.render_vars("HtmlPart", &vars).unwrap(),
            "<p>&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt; <b>Tom & \"Jerry\"</b> &lt;i&gt;, &amp; [&lt;i&gt;][&amp;]</p>"
        );
        assert_eq!(
            c.render_vars("TextPart", &vars).unwrap(),
            "<b>Tom & \"Jerry\"</b> [<i>][&] <i>"
        );
        assert_eq!(
            c.parts().collect::<Vec<_>>(),
            ["HtmlPart", "Subject", "TextPart"]
        );
        assert!(matches!(
            c.render_vars("Body", &vars),
            Err(RenderError::UnknownPart(p)) if p == "Body"
        ));
    }

    #[test]
    fn missing_variables_render_empty() {
        let ctx = json!({});
        assert_eq!(
            render(
                "a{{Nope}}b{{Nope.Deeper.[3]}}c{{{Nope}}}d",
                Escape::Html,
                &ctx
            ),
            "abcd"
        );
    }

    #[test]
    fn parse_errors_name_the_part_line_and_column() {
        let err = Compiled::compile(&[
            ("Subject", "fine {{x}}", Escape::Plain),
            (
                "HtmlPart",
                "<html>\n<body>\n  {{#if x}}\n  {{/each}}\n</body>",
                Escape::Html,
            ),
        ])
        .unwrap_err();
        assert!(
            err.0
                .starts_with("HtmlPart does not parse at line 4, column "),
            "{}",
            err.0
        );
        assert!(err.0.contains("\"if\" was opened"), "{}", err.0);

        let err = check("TextPart", "line one\nline two {{oops").unwrap_err();
        assert!(
            err.0
                .starts_with("TextPart does not parse at line 2, column "),
            "{}",
            err.0
        );
        let err = check("Body", "{{}}").unwrap_err();
        assert!(
            err.0.starts_with("Body does not parse at line 1, column 3"),
            "{}",
            err.0
        );

        let err =
            Compiled::compile(&[("A", "x", Escape::Plain), ("A", "y", Escape::Plain)]).unwrap_err();
        assert_eq!(err.0, "duplicate template part A");
    }

    #[test]
    fn inline_partials_render_and_unsafe_partials_are_refused() {
        let src = "{{#* inline \"fullName\"}}{{User.UserAttributes.FirstName.[0]}}{{/inline}}Hello {{> fullName}}!";
        assert_eq!(render(src, Escape::Plain, &ep_ctx()), "Hello Sofia!");

        let cycle =
            r#"{{#*inline "a"}}A{{> b}}{{/inline}}{{#*inline "b"}}B{{> a}}{{/inline}}{{> a}}"#;
        let err = check("Body", cycle).unwrap_err();
        assert!(err.0.contains("includes itself"), "{}", err.0);
        let selfref = r#"{{#*inline "a"}}{{> a}}{{/inline}}{{> a}}"#;
        assert!(check("Body", selfref)
            .unwrap_err()
            .0
            .contains("includes itself"));

        let err = check("Body", "x\n{{> Subject}}").unwrap_err();
        assert_eq!(
            err.0,
            "Body is not supported at line 2, column 1: the partial \"Subject\" is not defined in this part"
        );
        assert!(check("Body", "{{> (lookup this \"p\")}}")
            .unwrap_err()
            .0
            .contains("dynamic partial names"));
        assert!(check("Body", "{{#> layout}}x{{/layout}}")
            .unwrap_err()
            .0
            .contains("partial blocks"));
        assert!(check("Body", "{{*deco}}")
            .unwrap_err()
            .0
            .contains("decorators"));
    }

    #[test]
    fn expensive_templates_are_refused() {
        let deep = "{{#if a}}".repeat(NESTING_MAX + 1) + &"{{/if}}".repeat(NESTING_MAX + 1);
        assert!(check("Body", &deep).unwrap_err().0.contains("deep"));
        let ok = "{{#if a}}".repeat(NESTING_MAX) + &"{{/if}}".repeat(NESTING_MAX);
        check("Body", &ok).unwrap();

        let each =
            "{{#each a}}".repeat(EACH_NESTING_MAX + 1) + &"{{/each}}".repeat(EACH_NESTING_MAX + 1);
        assert!(check("Body", &each).unwrap_err().0.contains("#each"));

        // exponential expansion through partials
        let mut src = String::new();
        for i in 0..30 {
            src.push_str(&format!(
                "{{{{#*inline \"p{i}\"}}}}{{{{> p{n}}}}}{{{{> p{n}}}}}{{{{/inline}}}}",
                n = i + 1
            ));
        }
        src.push_str("{{#*inline \"p30\"}}x{{/inline}}{{> p0}}");
        let err = check("Body", &src).unwrap_err();
        assert!(
            err.0.contains("too expensive") || err.0.contains("deep"),
            "{}",
            err.0
        );
    }

    #[test]
    fn output_is_capped() {
        let big = "x".repeat(OUTPUT_BYTES_MAX / 50 + 1);
        let s = subs(&[("Big", &[big.as_str()])]);
        let ctx = context(None, "a", "EMAIL", None, &s);
        let src = "{{Big}}".repeat(60);
        let err = one(&src, Escape::Plain).render("Body", &ctx).unwrap_err();
        assert_eq!(
            err,
            RenderError::TooLarge {
                part: "Body".into(),
                max: OUTPUT_BYTES_MAX
            }
        );
    }

    #[test]
    fn render_errors_name_the_part_and_line() {
        // lookup needs two parameters; Handlebars finds out only when rendering
        let c = one("line 1\n{{lookup Address}}", Escape::Plain);
        let err = c.render("Body", &json!({"Address": "a"})).unwrap_err();
        let RenderError::Failed { part, line, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!((part.as_str(), *line), ("Body", Some(2)));
        assert!(
            err.to_string()
                .starts_with("Body does not render at line 2, column 1: "),
            "{err}"
        );
    }

    #[test]
    fn unknown_helpers_are_refused_when_checked() {
        let cases = [
            (
                "{{upper User.UserAttributes.LastName.[0]}}",
                "unknown helper \"upper\"",
            ),
            ("x\n  {{#if (upper a)}}y{{/if}}", "unknown helper \"upper\""),
            ("{{log \"hi\"}}", "unknown helper \"log\""),
            ("{{#section}}x{{/section}}", "unknown helper \"section\""),
            ("{{eq a}}", "eq takes 2 parameters, not 1"),
            (
                "{{#and a}}x{{/and}}",
                "and takes at least 2 parameters, not 1",
            ),
            ("{{#if (not a b)}}x{{/if}}", "not takes 1 parameters, not 2"),
            (
                "{{> p (upper a)}}{{#*inline \"p\"}}{{/inline}}",
                "unknown helper \"upper\"",
            ),
        ];
        for (source, why) in cases {
            let err = check("Body", source).unwrap_err().0;
            assert!(
                err.starts_with("Body is not supported at line "),
                "{source}: {err}"
            );
            assert!(err.ends_with(why), "{source}: {err}");
        }
        assert_eq!(
            check("Body", "x\n  {{#if (upper a)}}y{{/if}}")
                .unwrap_err()
                .0,
            "Body is not supported at line 2, column 3: unknown helper \"upper\""
        );
    }

    #[test]
    fn pinpoint_conditional_helpers() {
        let s = subs(&[
            ("City", &["Los Angeles"]),
            ("Age", &["22"]),
            ("Young", &["9"]),
            ("Colors", &["red", "blue"]),
        ]);
        let ctx = context(Some(&endpoint()), "a", "EMAIL", None, &s);
        let cases = [
            // block form with else, as in the user guide
            ("{{#eq Colors.[0] \"red\"}}likes red{{else}}no red{{/eq}}", "likes red"),
            ("{{#neq Colors.[0] \"red\"}}no red{{else}}likes red{{/neq}}", "likes red"),
            (
                "{{#and (eq City \"Los Angeles\") (eq Location.Country \"US\")}}LA, US{{else}}elsewhere{{/and}}",
                "LA, US",
            ),
            (
                "{{#or (eq City \"Seattle\") (eq City \"Portland\")}}west{{else}}not west{{/or}}",
                "not west",
            ),
            ("{{#not (eq City \"Seattle\")}}not Seattle{{/not}}", "not Seattle"),
            // numeric comparison of numeric strings: "9" < "17" < "22"
            ("{{#gt Age.[0] \"17\"}}adult{{else}}minor{{/gt}}", "adult"),
            ("{{#gt Young.[0] \"17\"}}adult{{else}}minor{{/gt}}", "minor"),
            ("{{#gte Age \"22\"}}yes{{/gte}}", "yes"),
            ("{{#lt Metrics.Sessions 4}}few{{/lt}}", "few"),
            ("{{#lte Metrics.Sessions 3}}few{{/lte}}", "few"),
            // inline forms
            ("{{eq City \"Los Angeles\" yes='y' no='n'}}", "y"),
            ("{{eq City \"Seattle\" yes='y' no='n'}}", "n"),
            ("{{eq City \"Seattle\"}}", "false"),
            ("{{not (eq City \"Seattle\")}}", "true"),
            ("{{ne 1 2}}", "true"),
            // a one-value list compares as its value; numbers as text
            ("{{#eq Attributes.Plan \"gold\"}}gold{{/eq}}", "gold"),
            ("{{#eq Age 22}}22{{/eq}}", "22"),
            ("{{#if (gt Metrics.Sessions 2)}}busy{{/if}}", "busy"),
        ];
        for (source, want) in cases {
            assert_eq!(render(source, Escape::Plain, &ctx), want, "{source}");
        }
        // inline yes/no values are escaped in HTML parts
        assert_eq!(
            render("{{eq 1 1 yes='<b>'}}", Escape::Html, &ctx),
            "&lt;b&gt;"
        );
    }

    #[test]
    fn builtin_helpers_still_work() {
        let ctx = json!({"a": ["x", "y"], "o": {"k": "v"}, "n": 3});
        assert_eq!(render("{{lookup a 1}}", Escape::Plain, &ctx), "y");
        assert_eq!(
            render("{{#with o}}{{k}}{{/with}}", Escape::Plain, &ctx),
            "v"
        );
        assert_eq!(
            render("{{#unless z}}none{{/unless}}", Escape::Plain, &ctx),
            "none"
        );
        assert_eq!(
            render("{{#if (gt n 2)}}big{{/if}}", Escape::Plain, &ctx),
            "big"
        );
        assert_eq!(
            render("{{! comment }}{{!-- long --}}ok", Escape::Plain, &ctx),
            "ok"
        );
        assert_eq!(render("\\{{a}}", Escape::Plain, &ctx), "{{a}}");
    }

    #[test]
    fn deep_templates_render_on_a_small_stack() {
        // tokio worker threads have 2 MiB stacks
        let src = "{{#if a}}".repeat(NESTING_MAX) + "{{b}}" + &"{{/if}}".repeat(NESTING_MAX);
        // A test of stack depth, not a simulated path.
        #[allow(clippy::disallowed_methods)]
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let c = one(&src, Escape::Html);
                c.render("Body", &json!({"a": true, "b": "deep"})).unwrap()
            })
            .unwrap();
        assert_eq!(handle.join().unwrap(), "deep");
    }

    #[test]
    fn compiled_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Compiled>();
        assert_send_sync::<Vars>();
    }

    #[test]
    fn rendering_many_recipients_reuses_the_parse() {
        let body = format!(
            "<p>Hi {{{{User.UserAttributes.FirstName}}}},</p>{}<p>{{{{#each Attributes.Colors}}}}{{{{this}}}} {{{{/each}}}}</p>",
            "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>".repeat(30)
        );
        assert!(body.len() > 1800);
        let c = Compiled::compile(&[("HtmlPart", body.as_str(), Escape::Html)]).unwrap();
        let ep = endpoint();
        for i in 0..200 {
            let s = subs(&[("N", &[if i % 2 == 0 { "a" } else { "b" }])]);
            let vars = Vars::new(context(Some(&ep), "a@example.com", "EMAIL", None, &s));
            let out = c.render_vars("HtmlPart", &vars).unwrap();
            assert!(out.starts_with("<p>Hi Sofia,</p>"));
        }
    }

    proptest! {
        #[test]
        fn text_without_braces_renders_to_itself(s in "(\\PC|\n|\r|\t)*") {
            prop_assume!(!s.contains("{{"));
            for escape in [Escape::Plain, Escape::Html] {
                let c = Compiled::compile(&[("Body", s.as_str(), escape)]).unwrap();
                prop_assert_eq!(c.render("Body", &json!({})).unwrap(), s.clone());
            }
        }

        #[test]
        fn any_substituted_value_renders_verbatim_in_plain_parts(v in "\\PC*") {
            let s = subs(&[("V", &[v.as_str()])]);
            let ctx = context(None, "a", "SMS", None, &s);
            prop_assert_eq!(render("{{V}}", Escape::Plain, &ctx), v);
        }
    }
}
