//! What every domain's `register` shares: function registration with docs and examples, error
//! conversion, the trailing options map, and running a future on the bridge.

use std::future::Future;
use std::time::Duration;

use rhai::{
    Dynamic, EvalAltResult, FnNamespace, FuncRegistration, Map, NativeCallContext, Position,
};

use crate::bridge::Stop;
use crate::ops::Target;

/// A failed operation: names the backend (with its redacted address) and the cause.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{backend} at {address}: {cause}")]
    Backend {
        backend: &'static str,
        address: String,
        cause: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(String),
}

impl OpError {
    pub fn backend(backend: &'static str, address: String, cause: impl std::fmt::Display) -> Self {
        OpError::Backend {
            backend,
            address,
            cause: cause.to_string(),
        }
    }
}

/// Marks a runtime error as a refusal (exit 3 with the message, not a script error).
#[derive(Debug, Clone)]
pub struct Refusal(pub String);

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// A registration for a module function: documented, named parameters, volatile (the optimiser
/// must never call it at compile time). `doc` holds a description and a ```rhai example.
pub fn func(name: &str, params: &[&str], doc: &str) -> FuncRegistration {
    FuncRegistration::new(name)
        .with_namespace(FnNamespace::Internal)
        .with_volatility(true)
        .with_purity(true)
        .with_params_info(params)
        .with_comments([doc_comment(doc)])
}

/// The same, callable as a method or plain function (custom-type methods, globals).
pub fn global_func(name: &str, params: &[&str], doc: &str) -> FuncRegistration {
    func(name, params, doc).with_namespace(FnNamespace::Global)
}

fn doc_comment(doc: &str) -> String {
    doc.trim()
        .lines()
        .map(|l| format!("/// {l}").trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Turns an operation's error into a Rhai runtime error named after the function.
pub fn op_error(op: &str, e: OpError) -> Box<EvalAltResult> {
    match e {
        OpError::Refused(message) => EvalAltResult::ErrorRuntime(
            Dynamic::from(Refusal(format!("{op}: {message}"))),
            Position::NONE,
        )
        .into(),
        other => {
            EvalAltResult::ErrorRuntime(format!("{op}: {other}").into(), Position::NONE).into()
        }
    }
}

/// Ends the script because the run was cancelled.
pub fn stopped(stop: Stop) -> Box<EvalAltResult> {
    let why = match stop {
        Stop::Interrupt => "interrupted",
        Stop::Timeout => "timeout",
    };
    EvalAltResult::ErrorTerminated(why.into(), Position::NONE).into()
}

/// Runs an operation's future on the bridge and converts its result for Rhai, the error
/// placed at the call site.
pub fn block<T>(
    ctx: &NativeCallContext,
    target: &Target,
    op: &str,
    fut: impl Future<Output = Result<T, OpError>>,
) -> RhaiResult<T> {
    match target.bridge.block_on(fut) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(at(ctx, op_error(op, e))),
        Err(stop) => Err(stopped(stop)),
    }
}

/// Places an error at the call site. Rhai leaves a native function's error without a position
/// when it was called with a namespace (`jobs::counts()`), so every host function does this.
pub fn at(ctx: &NativeCallContext, mut err: Box<EvalAltResult>) -> Box<EvalAltResult> {
    if err.position().is_none() {
        err.set_position(ctx.call_position());
    }
    err
}

/// Converts a serialisable result into plain Rhai maps and arrays.
pub fn to_rhai<T: serde::Serialize>(op: &str, value: &T) -> RhaiResult<Dynamic> {
    rhai::serde::to_dynamic(value).map_err(|e| op_error(op, OpError::Invalid(e.to_string())))
}

/// The trailing options map of a call: typed getters, and a final check that catches typos.
pub struct Opts<'a> {
    op: &'a str,
    map: Map,
    pos: Position,
}

impl<'a> Opts<'a> {
    pub fn new(ctx: &NativeCallContext, op: &'a str, map: Map) -> Opts<'a> {
        Opts {
            op,
            map,
            pos: ctx.call_position(),
        }
    }

    fn invalid(&self, key: &str, why: impl std::fmt::Display) -> Box<EvalAltResult> {
        let mut err = op_error(self.op, OpError::Invalid(format!("option `{key}`: {why}")));
        err.set_position(self.pos);
        err
    }

    /// Takes an option; () counts as absent, so `#{older_than: ARGS.older_than}` works
    /// whether or not the argument was given.
    fn take(&mut self, key: &str) -> Option<Dynamic> {
        self.map.remove(key).filter(|v| !v.is_unit())
    }

    /// A duration given as "30s", "10m", "1h", "1d" or seconds.
    pub fn duration(&mut self, key: &str) -> RhaiResult<Option<Duration>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => duration_of(&v)
                .map(Some)
                .map_err(|why| self.invalid(key, why)),
        }
    }

    /// An integer, also given as text (ARGS values are text).
    pub fn int(&mut self, key: &str) -> RhaiResult<Option<i64>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) if v.is_string() => v
                .to_string()
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(key, format!("`{v}` is not an integer"))),
            Some(v) => v
                .as_int()
                .map(Some)
                .map_err(|t| self.invalid(key, format!("expected an integer, got {t}"))),
        }
    }

    /// true or false, also given as text.
    pub fn bool(&mut self, key: &str) -> RhaiResult<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) if v.is_string() => match v.to_string().as_str() {
                "true" | "yes" | "1" => Ok(Some(true)),
                "false" | "no" | "0" => Ok(Some(false)),
                other => Err(self.invalid(key, format!("`{other}` is not true or false"))),
            },
            Some(v) => v
                .as_bool()
                .map(Some)
                .map_err(|t| self.invalid(key, format!("expected true or false, got {t}"))),
        }
    }

    pub fn string(&mut self, key: &str) -> RhaiResult<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .into_immutable_string()
                .map(|s| Some(s.to_string()))
                .map_err(|t| self.invalid(key, format!("expected a string, got {t}"))),
        }
    }

    /// A string or an array of strings.
    pub fn strings(&mut self, key: &str) -> RhaiResult<Option<Vec<String>>> {
        let Some(v) = self.take(key) else {
            return Ok(None);
        };
        if v.is_string() {
            return Ok(Some(vec![v.to_string()]));
        }
        let items = v
            .into_typed_array::<rhai::ImmutableString>()
            .map_err(|_| self.invalid(key, "expected a string or an array of strings"))?;
        Ok(Some(items.into_iter().map(|s| s.to_string()).collect()))
    }

    /// Fails on any option that no getter took: a misspelt option must not be ignored.
    pub fn finish(self, known: &[&str]) -> RhaiResult<()> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(key) => {
                let mut err = op_error(
                    self.op,
                    OpError::Invalid(format!(
                        "unknown option `{key}`; options are {}",
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
                err.set_position(self.pos);
                Err(err)
            }
        }
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
