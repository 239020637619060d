//! A registered function as data: its name, parameters, options, description and examples.
//!
//! Registration, the options check, the error prefix, `opsh api`, the README's API section, the
//! REPL's help and completion, and the examples test all read the same [`Spec`]. Adding a
//! function is one `static` spec plus its Rust body:
//!
//! ```ignore
//! static COUNT: Spec = Spec {
//!     module: "qdrant",
//!     name: "count",
//!     params: &[Param::new("collection", Kind::Str, "the collection")],
//!     options: &[Opt::new("exact", Kind::Bool, Default::Value("true"), "count exactly")],
//!     returns: "i64",
//!     doc: "The number of points in a collection.",
//!     examples: &[Example::new(r#"qdrant::count("youtube_content")"#, "42")],
//! };
//! reg.add(&COUNT, |c| c.block(count(c.target, &c.str("collection")?, c.bool("exact")?)));
//! ```

use std::any::TypeId;
use std::rc::Rc;
use std::time::Duration;

use rhai::{Array, Dynamic, EvalAltResult, FuncRegistration, Map, Module, NativeCallContext};
use serde::Serialize;

use crate::bridge::Stop;
use crate::ops::Target;
use crate::ops::error::{ErrorKind, OpError, OpFailure};

/// What a parameter or option accepts. Values are checked and converted before the body runs,
/// so a body never parses text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Bool,
    Str,
    /// A string or an array of strings.
    Strings,
    /// "30s", "10m", "1h", "1d" or seconds.
    Duration,
    Map,
    Array,
    /// Any value (the body decides).
    Any,
    /// A report (report::new); only on typed registrations.
    Report,
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Bool => "bool",
            Kind::Str => "string",
            Kind::Strings => "string|array",
            Kind::Duration => "duration",
            Kind::Map => "map",
            Kind::Array => "array",
            Kind::Any => "any",
            Kind::Report => "Report",
        }
    }

    /// Checks a value and returns it in its canonical form: ints from text (ARGS values may be
    /// text), durations as whole or fractional seconds, a lone string as a one-element array.
    pub fn convert(self, v: Dynamic) -> Result<Dynamic, String> {
        let got = || format!("expected {}, got {}", self.describe(), shown(&v));
        match self {
            Kind::Any => Ok(v),
            Kind::Int if v.is_int() => Ok(v),
            Kind::Int if v.is_string() => v
                .to_string()
                .trim()
                .parse::<i64>()
                .map(Dynamic::from)
                .map_err(|_| got()),
            Kind::Float if v.is_float() => Ok(v),
            Kind::Float if v.is_int() => Ok(Dynamic::from(v.as_int().unwrap_or(0) as f64)),
            Kind::Float if v.is_string() => v
                .to_string()
                .trim()
                .parse::<f64>()
                .map(Dynamic::from)
                .map_err(|_| got()),
            Kind::Bool if v.is_bool() => Ok(v),
            Kind::Bool if v.is_string() => match v.to_string().as_str() {
                "true" | "yes" | "1" => Ok(true.into()),
                "false" | "no" | "0" => Ok(false.into()),
                _ => Err(got()),
            },
            Kind::Str if v.is_string() => Ok(v),
            Kind::Strings if v.is_string() => Ok(Dynamic::from_array(vec![v])),
            Kind::Strings if v.is_array() => {
                let items = v.clone().into_array().unwrap_or_default();
                if items.iter().all(Dynamic::is_string) {
                    Ok(v)
                } else {
                    Err(got())
                }
            }
            Kind::Duration => duration_of(&v).map(|d| Dynamic::from(d.as_secs_f64())),
            Kind::Map if v.is_map() => Ok(v),
            Kind::Array if v.is_array() => Ok(v),
            _ => Err(got()),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Int => "an integer",
            Kind::Float => "a number",
            Kind::Bool => "true or false",
            Kind::Str => "a string",
            Kind::Strings => "a string or an array of strings",
            Kind::Duration => "a duration such as \"1h\" or seconds",
            Kind::Map => "a map",
            Kind::Array => "an array",
            Kind::Any => "a value",
            Kind::Report => "a report",
        }
    }
}

fn shown(v: &Dynamic) -> String {
    if v.is_string() {
        format!("\"{v}\"")
    } else {
        v.type_name().rsplit("::").next().unwrap_or("?").to_string()
    }
}

/// A duration from a Rhai value: "1h"-style text or a number of seconds.
pub fn duration_of(v: &Dynamic) -> Result<Duration, String> {
    if let Ok(secs) = v.as_int() {
        return u64::try_from(secs)
            .map(Duration::from_secs)
            .map_err(|_| format!("{secs} is negative"));
    }
    if let Ok(secs) = v.as_float() {
        return Duration::try_from_secs_f64(secs).map_err(|_| format!("{secs} is not a duration"));
    }
    match v.clone().into_immutable_string() {
        Ok(s) => crate::duration::parse(&s),
        Err(t) => Err(format!(
            "expected a duration such as \"1h\" or seconds, got {t}"
        )),
    }
}

#[derive(Debug, Serialize)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
    /// May be left out (only trailing parameters).
    pub optional: bool,
}

impl Param {
    pub const fn new(name: &'static str, kind: Kind, doc: &'static str) -> Param {
        Param {
            name,
            kind,
            doc,
            optional: false,
        }
    }

    pub const fn optional(name: &'static str, kind: Kind, doc: &'static str) -> Param {
        Param {
            name,
            kind,
            doc,
            optional: true,
        }
    }
}

/// Where an option's value comes from when the call leaves it out.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "from", content = "value", rename_all = "snake_case")]
pub enum Default {
    /// Absent: the body decides.
    None,
    /// A literal, in the option's kind ("100", "true", "1h").
    Value(&'static str),
    /// A setting's value (`jobs.max_retries`), so `opsh config` changes it.
    Setting(&'static str),
}

#[derive(Debug, Serialize)]
pub struct Opt {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Default,
    pub doc: &'static str,
}

impl Opt {
    pub const fn new(name: &'static str, kind: Kind, default: Default, doc: &'static str) -> Opt {
        Opt {
            name,
            kind,
            default,
            doc,
        }
    }
}

/// An example and the value it must give, as JSON, against the examples test's seeded database
/// (tests/fixtures/examples.sql).
#[derive(Debug, Serialize)]
pub struct Example {
    pub code: &'static str,
    pub expect: &'static str,
}

impl Example {
    pub const fn new(code: &'static str, expect: &'static str) -> Example {
        Example { code, expect }
    }
}

#[derive(Debug, Serialize)]
pub struct Spec {
    /// The Rhai module (`jobs`); empty for a global function.
    pub module: &'static str,
    pub name: &'static str,
    pub params: &'static [Param],
    pub options: &'static [Opt],
    /// What it returns, as Rhai names it: Map, Array, bool, i64, String, ().
    pub returns: &'static str,
    pub doc: &'static str,
    pub examples: &'static [Example],
}

impl Spec {
    /// A global function or a report method: no module, no options.
    pub const fn global(
        name: &'static str,
        params: &'static [Param],
        returns: &'static str,
        doc: &'static str,
        examples: &'static [Example],
    ) -> Spec {
        Spec {
            module: "",
            name,
            params,
            options: &[],
            returns,
            doc,
            examples,
        }
    }

    /// `jobs::reset_stuck`, the name scripts call and errors start with.
    pub fn path(&self) -> String {
        if self.module.is_empty() {
            self.name.to_string()
        } else {
            format!("{}::{}", self.module, self.name)
        }
    }

    /// `jobs::list(options?: map) -> Array`; a report method as `Report.ok(name, detail)`.
    pub fn signature(&self) -> String {
        let (head, params) = match self.params.first() {
            Some(p) if p.kind == Kind::Report => {
                (format!("Report.{}", self.name), &self.params[1..])
            }
            _ => (self.path(), self.params),
        };
        let mut params: Vec<String> = params
            .iter()
            .map(|p| {
                let q = if p.optional { "?" } else { "" };
                format!("{}{q}: {}", p.name, p.kind.name())
            })
            .collect();
        if !self.options.is_empty() {
            params.push("options?: map".into());
        }
        format!("{head}({}) -> {}", params.join(", "), self.returns)
    }

    /// The doc comment Rhai's metadata carries (`:help`, gen_fn_metadata): description,
    /// options and examples, each line `/// `-prefixed.
    fn comment(&self) -> String {
        let mut text = self.doc.trim().to_string();
        if !self.options.is_empty() {
            text.push_str("\n\nOptions:");
            for o in self.options {
                text.push_str(&format!(
                    "\n  {}: {}{} — {}",
                    o.name,
                    o.kind.name(),
                    default_text(o.default),
                    o.doc
                ));
            }
        }
        for e in self.examples {
            text.push_str(&format!("\n```rhai\n{}\n```\n→ {}", e.code, e.expect));
        }
        text.lines()
            .map(|l| format!("/// {l}").trim_end().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn option(&self, name: &str) -> Option<&Opt> {
        self.options.iter().find(|o| o.name == name)
    }
}

pub fn default_text(d: Default) -> String {
    match d {
        Default::None => String::new(),
        Default::Value(v) => format!(" = {v}"),
        Default::Setting(key) => format!(" = setting {key}"),
    }
}

/// Why a body stopped: an operation error, or the run was cancelled.
#[derive(Debug)]
pub enum Failure {
    Op(OpError),
    Stop(Stop),
}

impl Failure {
    /// As Rhai's error, placed at the call site.
    pub fn into_eval(self, ctx: &NativeCallContext, spec: &Spec) -> Box<EvalAltResult> {
        match self {
            Failure::Op(e) => to_eval_error(ctx, spec, e),
            Failure::Stop(stop) => {
                EvalAltResult::ErrorTerminated(stop.to_string().into(), ctx.call_position()).into()
            }
        }
    }
}

impl From<OpError> for Failure {
    fn from(e: OpError) -> Failure {
        Failure::Op(e)
    }
}

impl From<Stop> for Failure {
    fn from(s: Stop) -> Failure {
        Failure::Stop(s)
    }
}

pub type Outcome<T> = Result<T, Failure>;

/// One call of a registered function: its checked arguments and options, and the target.
pub struct Call<'a> {
    pub spec: &'static Spec,
    pub target: &'a Rc<Target>,
    args: Vec<Dynamic>,
    opts: Map,
}

impl<'a> Call<'a> {
    /// Runs a future on the bridge: Ctrl-C and --timeout end it.
    pub fn block<T>(&self, fut: impl Future<Output = Result<T, OpError>>) -> Outcome<T> {
        let started = std::time::Instant::now();
        let outcome = self.target.bridge.block_on(fut);
        // -v: what opsh does, and how long each operation took.
        tracing::debug!(
            "{}: {} in {:.1} ms",
            self.spec.path(),
            match &outcome {
                Ok(Ok(_)) => "done",
                Ok(Err(_)) => "failed",
                Err(_) => "cancelled",
            },
            started.elapsed().as_secs_f64() * 1000.0
        );
        match outcome {
            Ok(result) => result.map_err(Failure::Op),
            Err(stop) => Err(Failure::Stop(stop)),
        }
    }

    /// A parameter's or option's value: the given one, else the spec's default. `None` when
    /// absent with no default.
    pub fn value(&self, name: &str) -> Option<Dynamic> {
        if let Some(i) = self.spec.params.iter().position(|p| p.name == name) {
            return self.args.get(i).cloned();
        }
        let Some(opt) = self.spec.option(name) else {
            // A body asking for something its spec does not declare is a bug the examples test
            // catches: every function runs there.
            panic!(
                "{} reads `{name}`, which its spec does not declare",
                self.spec.path()
            );
        };
        if let Some(v) = self.opts.get(name) {
            return Some(v.clone());
        }
        let text = match opt.default {
            Default::None => return None,
            Default::Value(v) => v.to_string(),
            Default::Setting(key) => self
                .target
                .settings
                .text_by_name(key)
                .unwrap_or_default()
                .to_string(),
        };
        opt.kind.convert(Dynamic::from(text)).ok()
    }

    fn typed<T>(
        &self,
        name: &str,
        f: impl FnOnce(Dynamic) -> Option<T>,
    ) -> Result<Option<T>, OpError> {
        match self.value(name) {
            None => Ok(None),
            Some(v) => f(v)
                .map(Some)
                .ok_or_else(|| OpError::invalid(format!("`{name}` has the wrong type"))),
        }
    }

    fn required<T>(&self, name: &str, v: Result<Option<T>, OpError>) -> Result<T, OpError> {
        v?.ok_or_else(|| OpError::invalid(format!("`{name}` is required")))
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, OpError> {
        self.typed(name, |v| v.as_int().ok())
    }
    pub fn int(&self, name: &str) -> Result<i64, OpError> {
        self.required(name, self.opt_int(name))
    }
    pub fn opt_float(&self, name: &str) -> Result<Option<f64>, OpError> {
        self.typed(name, |v| v.as_float().ok())
    }
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, OpError> {
        self.typed(name, |v| v.as_bool().ok())
    }
    pub fn bool(&self, name: &str) -> Result<bool, OpError> {
        self.required(name, self.opt_bool(name))
    }
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, OpError> {
        self.typed(name, |v| {
            v.into_immutable_string().ok().map(|s| s.to_string())
        })
    }
    pub fn str(&self, name: &str) -> Result<String, OpError> {
        self.required(name, self.opt_str(name))
    }
    pub fn opt_strings(&self, name: &str) -> Result<Option<Vec<String>>, OpError> {
        self.typed(name, |v| {
            v.into_array()
                .ok()
                .map(|a| a.into_iter().map(|s| s.to_string()).collect())
        })
    }
    pub fn opt_duration(&self, name: &str) -> Result<Option<Duration>, OpError> {
        self.typed(name, |v| {
            v.as_float()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
        })
    }
    pub fn duration(&self, name: &str) -> Result<Duration, OpError> {
        self.required(name, self.opt_duration(name))
    }
    pub fn array(&self, name: &str) -> Result<Array, OpError> {
        self.required(name, self.typed(name, |v| v.into_array().ok()))
    }
    pub fn opt_map(&self, name: &str) -> Result<Option<Map>, OpError> {
        self.typed(name, |v| v.try_cast::<Map>())
    }
    pub fn any(&self, name: &str) -> Result<Dynamic, OpError> {
        self.value(name)
            .ok_or_else(|| OpError::invalid(format!("`{name}` is required")))
    }
}

/// Collects a domain's functions into its module, and every spec registered, for `opsh api`.
pub struct Registrar<'a> {
    module: Module,
    target: &'a Rc<Target>,
    specs: &'a mut Vec<&'static Spec>,
}

impl<'a> Registrar<'a> {
    pub fn new(target: &'a Rc<Target>, specs: &'a mut Vec<&'static Spec>) -> Registrar<'a> {
        Registrar {
            module: Module::new(),
            target,
            specs,
        }
    }

    pub fn target(&self) -> &Rc<Target> {
        self.target
    }

    /// Registers `spec` with its body: as `name(params…)` and, when it has options, also as
    /// `name(params…, options)`. Arguments are checked against the spec before the body runs.
    pub fn add<R, F>(&mut self, spec: &'static Spec, body: F)
    where
        R: Serialize + 'static,
        F: Fn(&mut Call) -> Outcome<R> + 'static,
    {
        self.specs.push(spec);
        let body = Rc::new(body);
        let required = spec.params.iter().filter(|p| !p.optional).count();
        let option_forms: &[bool] = if spec.options.is_empty() {
            &[false]
        } else {
            &[false, true]
        };
        let forms =
            (required..=spec.params.len()).flat_map(|n| option_forms.iter().map(move |&o| (n, o)));
        for (positional, with_options) in forms {
            let mut types = vec![TypeId::of::<Dynamic>(); positional];
            let mut names: Vec<String> = spec.params[..positional]
                .iter()
                .map(|p| format!("{}: {}", p.name, p.kind.name()))
                .collect();
            if with_options {
                types.push(TypeId::of::<Map>());
                names.push("options: Map".into());
            }
            names.push(spec.returns.to_string());
            let target = self.target.clone();
            let body = body.clone();
            let namespace = if spec.module.is_empty() {
                rhai::FnNamespace::Global
            } else {
                rhai::FnNamespace::Internal
            };
            let func = move |ctx: NativeCallContext,
                             args: &mut [&mut Dynamic]|
                  -> Result<Dynamic, Box<EvalAltResult>> {
                call(spec, &target, &ctx, args, positional, with_options, &*body)
            };
            FuncRegistration::new(spec.name)
                .with_namespace(namespace)
                .with_params_info(names)
                .with_comments([spec.comment()])
                .set_into_module_raw(
                    &mut self.module,
                    types,
                    rhai::RhaiFunc::Pure {
                        func: Rc::new(move |ctx, args| {
                            let ctx = ctx.expect("registered with a context");
                            func(ctx, args)
                        }),
                        has_context: true,
                        is_pure: true,
                        // Side effects: the optimiser must never call it at compile time.
                        is_volatile: true,
                    },
                );
        }
    }

    /// For the few functions that need Rhai's typed dispatch (a custom-type receiver, or
    /// shadowing a standard function's exact INT/FLOAT overloads): the spec documents and names
    /// it; the caller sets the typed body into [`Registrar::module`].
    pub fn typed(&mut self, spec: &'static Spec, params: &[&str]) -> FuncRegistration {
        self.typed_as(spec, spec.name, params)
    }

    /// The same under another Rhai name (a property getter: `get$status`).
    pub fn typed_as(
        &mut self,
        spec: &'static Spec,
        rhai_name: &str,
        params: &[&str],
    ) -> FuncRegistration {
        if !self.specs.iter().any(|s| std::ptr::eq(*s, spec)) {
            self.specs.push(spec);
        }
        let namespace = if spec.module.is_empty() {
            rhai::FnNamespace::Global
        } else {
            rhai::FnNamespace::Internal
        };
        FuncRegistration::new(rhai_name)
            .with_namespace(namespace)
            .with_volatility(true)
            .with_params_info(params)
            .with_comments([spec.comment()])
    }

    pub fn module(&mut self) -> &mut Module {
        &mut self.module
    }

    pub fn finish(self) -> Module {
        self.module
    }
}

fn call<R: Serialize + 'static>(
    spec: &'static Spec,
    target: &Rc<Target>,
    ctx: &NativeCallContext,
    args: &mut [&mut Dynamic],
    positional: usize,
    with_options: bool,
    body: &dyn Fn(&mut Call) -> Outcome<R>,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let fail = |e: OpError| to_eval_error(ctx, spec, e);
    let mut values = Vec::with_capacity(positional);
    for (p, v) in spec.params.iter().zip(args[..positional].iter_mut()) {
        let v = std::mem::take(&mut **v);
        values.push(
            p.kind
                .convert(v)
                .map_err(|why| fail(OpError::invalid(format!("`{}`: {why}", p.name))))?,
        );
    }
    let opts = if with_options {
        let given = std::mem::take(&mut *args[positional])
            .try_cast::<Map>()
            .unwrap_or_default();
        check_options(spec, given).map_err(fail)?
    } else {
        Map::new()
    };
    let mut call = Call {
        spec,
        target,
        args: values,
        opts,
    };
    match body(&mut call) {
        // A Dynamic (a custom type such as a Report) passes as it is; serde would flatten it.
        Ok(value) => match (Box::new(value) as Box<dyn std::any::Any>).downcast::<Dynamic>() {
            Ok(dynamic) => Ok(*dynamic),
            Err(value) => {
                let value = value.downcast_ref::<R>().expect("the body's own type");
                let mut dynamic = rhai::serde::to_dynamic(value)
                    .map_err(|e| fail(OpError::invalid(format!("result: {e}"))))?;
                // Rows and records keep the order of their fields for the tables that show them.
                if dynamic.is_map() || dynamic.is_array() {
                    crate::columns::attach(&mut dynamic, &crate::columns::of_serialize(value));
                }
                Ok(dynamic)
            }
        },
        Err(failure) => Err(failure.into_eval(ctx, spec)),
    }
}

/// Checks the options map against the spec: a misspelt option is refused with a suggestion,
/// each value converted to its kind. () counts as absent, so `#{older_than: ARGS.older_than}`
/// works whether or not the argument was given.
fn check_options(spec: &Spec, given: Map) -> Result<Map, OpError> {
    let mut out = Map::new();
    for (key, value) in given {
        let Some(opt) = spec.option(&key) else {
            let names = spec.options.iter().map(|o| o.name);
            let hint = match crate::suggest::ranked(&key, names.clone()).first() {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            return Err(OpError::invalid(format!(
                "unknown option `{key}`; {hint}options are {}",
                names
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if value.is_unit() {
            continue;
        }
        let value = opt
            .kind
            .convert(value)
            .map_err(|why| OpError::invalid(format!("option `{key}`: {why}")))?;
        out.insert(key, value);
    }
    Ok(out)
}

/// An operation's error as a Rhai runtime error carrying an [`OpFailure`], placed at the call
/// site (Rhai leaves a namespaced native call's error without a position).
pub fn to_eval_error(ctx: &NativeCallContext, spec: &Spec, error: OpError) -> Box<EvalAltResult> {
    let failure = OpFailure {
        op: spec.path(),
        error,
    };
    EvalAltResult::ErrorRuntime(Dynamic::from(failure), ctx.call_position()).into()
}

/// Whether an error value is an operation's refusal to go on: unconfirmed, or over its
/// deletion budget.
pub fn is_declined(value: &Dynamic) -> Option<String> {
    let failure = value.read_lock::<OpFailure>()?;
    matches!(
        failure.error.kind,
        ErrorKind::Declined | ErrorKind::OverBudget
    )
    .then(|| failure.to_string())
}
