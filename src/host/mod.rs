//! The Rhai host: one engine per process with explicit limits, the script catalog, compilation
//! (cached), running under cancellation, and turning Rhai errors into user errors.

pub mod catalog;
mod globals;
pub mod params;
pub mod render;
mod report_api;
mod resolver;
pub use crate::trust;

use crate::config::key;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use rhai::{AST, Dynamic, Engine, EvalAltResult, Map, Scope};

use crate::bridge::{Bridge, Stop};
use crate::error::Error;
use crate::ops::spec::{Spec, is_declined};
use crate::ops::{self, Target};
use catalog::{Catalog, Script};
use render::Sources;

/// How a script ended when it did not fail.
#[derive(Debug)]
pub enum Outcome {
    /// The value of its last expression (a Report decides the exit code).
    Value(Dynamic),
    /// `exit(n)` or `exit(report)`.
    Exit(Dynamic),
}

pub struct Host {
    engine: Engine,
    target: Rc<Target>,
    catalog: Rc<Catalog>,
    sources: Sources,
    timeout: Option<Duration>,
    compiled: HashMap<String, (Rc<str>, Rc<AST>)>,
    /// Functions defined so far in the REPL, kept for later lines.
    repl_functions: AST,
    exit: globals::ExitRequest,
    /// Every registered function's spec, in registration order.
    specs: Vec<&'static Spec>,
    /// Running one of opsh's own calls (call_builtin): errors carry no source frame.
    builtin: bool,
}

/// Engine limits, set explicitly: Rhai's defaults differ between debug and release builds.
const MAX_CALL_LEVELS: usize = 64;
const MAX_EXPR_DEPTH: usize = 128;
const MAX_FN_EXPR_DEPTH: usize = 64;
const MAX_STRING_SIZE: usize = 64 << 20;
const MAX_ARRAY_SIZE: usize = 10_000_000;
const MAX_MAP_SIZE: usize = 1_000_000;
const MAX_MODULES: usize = 256;
const MAX_VARIABLES: usize = 10_000;
const MAX_FUNCTIONS: usize = 10_000;

impl Host {
    pub fn new(target: Target, json: bool) -> Host {
        let target = Rc::new(target);
        let catalog = Rc::new(Catalog::new(target.settings.paths(key::SCRIPTS_DIRS)));
        let sources = Sources::default();
        let mut engine = Engine::new();
        set_limits(&mut engine, target.settings.int(key::LIMITS_MAX_OPERATIONS));
        engine.set_strict_variables(true);
        allow_new_as_name(&mut engine);

        let bridge = target.bridge.clone();
        engine.on_progress(move |_| bridge.stopped().map(|stop| Dynamic::from(stop.to_string())));
        let printing = target.bridge.clone();
        engine.on_print(move |text| {
            // With --json stdout holds exactly one JSON document, so prints go to stderr.
            if json {
                crate::output::stream::err(&format!("{text}\n"))
            } else {
                crate::output::stream::out(&format!("{text}\n"));
                // Nobody reads any more: the script ends at its next step, and the guards of
                // what it holds (the run lock, a backup folder) do their work on the way out.
                if crate::output::stream::failed().is_some() {
                    printing.cancel(Stop::Output);
                }
            }
        });
        engine.on_debug(|text, source, pos| match source {
            Some(source) => crate::output::stream::err(&format!("{source}:{pos:?}: {text}\n")),
            None => crate::output::stream::err(&format!("{pos:?}: {text}\n")),
        });
        engine.set_module_resolver(resolver::Resolver::new(catalog.clone(), sources.clone()));

        let exit = globals::ExitRequest::default();
        let mut specs = Vec::new();
        globals::register(&mut engine, &target, &exit, &mut specs);
        report_api::register(&mut engine, &target, &mut specs);
        ops::register_all(&mut engine, &target, &mut specs);

        let timeout = target.settings.optional_duration(key::RUN_TIMEOUT);
        Host {
            engine,
            target,
            catalog,
            sources,
            timeout,
            compiled: HashMap::new(),
            repl_functions: AST::empty(),
            exit,
            specs,
            builtin: false,
        }
    }

    pub fn settings(&self) -> &crate::config::Settings {
        &self.target.settings
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The registered functions (`opsh api`, the REPL's help and completion).
    pub fn specs(&self) -> &[&'static Spec] {
        &self.specs
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn bridge(&self) -> &Bridge {
        &self.target.bridge
    }

    /// The deployment this host works on (the REPL's banner and live completion names).
    pub fn target(&self) -> Rc<Target> {
        self.target.clone()
    }

    /// The functions defined at the REPL so far, as `name(a, b)`.
    pub fn repl_functions(&self) -> Vec<String> {
        self.repl_functions
            .iter_functions()
            .map(|f| format!("{}({})", f.name, f.params.join(", ")))
            .collect()
    }

    /// Forgets compiled scripts and resolved modules, so edited site scripts are read again
    /// (the REPL's `:reload`).
    pub fn reload(&mut self) {
        self.compiled.clear();
        self.engine.set_module_resolver(resolver::Resolver::new(
            self.catalog.clone(),
            self.sources.clone(),
        ));
    }

    /// A scope holding the script's arguments as the constant `ARGS`.
    pub fn scope(args: Map) -> Scope<'static> {
        let mut scope = Scope::new();
        scope.push_constant("ARGS", args);
        scope
    }

    /// The catalog's listing, with each site script that cannot run marked: one that does not
    /// compile, or declares its arguments wrongly, says why (`opsh scripts`), so an operator
    /// learns it before cron runs it.
    pub fn listed(&self) -> Vec<crate::host::catalog::Listed> {
        let mut listed = self.catalog.list();
        let scope = Self::scope(Map::new());
        for l in listed.iter_mut().filter(|l| l.problem.is_none()) {
            let Ok(script) = self.catalog.find(&l.name) else {
                continue;
            };
            if let Err(e) = self.engine.compile_with_scope(&scope, &script.source) {
                let at = match (e.1.line(), e.1.position()) {
                    (Some(line), Some(col)) => format!(" at {}:{line}:{col}", script.display),
                    _ => String::new(),
                };
                l.problem = Some(format!("does not compile: {}{at}", e.0));
            } else if let Err(e) = params::declared(&script.display, &script.source) {
                l.problem = Some(format!("bad argument declaration: {e}"));
            }
        }
        listed
    }

    /// Runs a catalog script with its arguments.
    pub fn run_script(&mut self, script: &Script, args: Map) -> Result<Outcome, Error> {
        let mut scope = Self::scope(args);
        let ast = self.compile(&scope, &script.display, &script.source)?;
        self.execute(&mut scope, &ast, &script.display)
    }

    /// Evaluates code given on the command line (`opsh -e`).
    pub fn eval(&mut self, code: &str) -> Result<Outcome, Error> {
        let mut scope = Self::scope(Map::new());
        let ast = self.compile(&scope, "<-e>", code)?;
        self.execute(&mut scope, &ast, "<-e>")
    }

    /// Runs one of opsh's own calls for a built-in command (`opsh migrate`): a failure says
    /// what failed and why, never the internal code that made the call.
    pub fn call_builtin(&mut self, code: &str) -> Result<Outcome, Error> {
        let mut scope = Self::scope(Map::new());
        let ast = self
            .engine
            .compile_with_scope(&scope, code)
            .map_err(|e| Error::Io(format!("internal call `{code}` does not compile: {e}")))?;
        self.builtin = true;
        let result = self.execute(&mut scope, &ast, "<builtin>");
        self.builtin = false;
        result
    }

    /// Evaluates one REPL entry in the session's scope; functions it defines stay available.
    pub fn eval_repl(&mut self, scope: &mut Scope<'static>, code: &str) -> Result<Outcome, Error> {
        self.sources.add("<repl>", code);
        let ast = self
            .engine
            .compile_with_scope(scope, code)
            .map_err(|e| Error::Script {
                rendered: self.sources.parse_error("<repl>", &e),
            })?;
        self.repl_functions = self.repl_functions.merge(&ast.clone_functions_only());
        let ast = self.repl_functions.merge(&ast);
        self.execute(scope, &ast, "<repl>")
    }

    /// Compiles once per process and source text; later runs of the same script reuse the AST.
    fn compile(&mut self, scope: &Scope, display: &str, source: &str) -> Result<Rc<AST>, Error> {
        if let Some((text, ast)) = self.compiled.get(display)
            && **text == *source
        {
            return Ok(ast.clone());
        }
        self.sources.add(display, source);
        let mut ast = self
            .engine
            .compile_with_scope(scope, source)
            .map_err(|e| Error::Script {
                rendered: self.sources.parse_error(display, &e),
            })?;
        ast.set_source(display);
        let ast = Rc::new(ast);
        self.compiled
            .insert(display.to_string(), (Rc::from(source), ast.clone()));
        Ok(ast)
    }

    fn execute(&mut self, scope: &mut Scope, ast: &AST, display: &str) -> Result<Outcome, Error> {
        let bridge = self.target.bridge.clone();
        let _run = bridge.begin_run(self.timeout);
        self.exit.take();
        let result = self.engine.eval_ast_with_scope::<Dynamic>(scope, ast);
        let exit = self.exit.take();
        // A cancelled run ends the same way whatever the interrupted call returned.
        if let Some(stop) = bridge.stopped() {
            return Err(match stop {
                Stop::Interrupt => Error::Interrupted,
                Stop::Timeout => Error::TimedOut(self.timeout.unwrap_or_default()),
                Stop::Output => output_error(),
            });
        }
        match result {
            Ok(_) if exit.is_some() => Ok(Outcome::Exit(exit.unwrap_or_default())),
            Ok(value) => Ok(Outcome::Value(value)),
            Err(err) => self.classify(&err, display),
        }
    }

    fn classify(&self, err: &EvalAltResult, display: &str) -> Result<Outcome, Error> {
        match innermost(err) {
            EvalAltResult::Exit(value, _) => Ok(Outcome::Exit(value.clone())),
            EvalAltResult::ErrorRuntime(value, _) if is_declined(value).is_some() => {
                let message = is_declined(value).unwrap_or_default();
                Err(Error::Refused { message })
            }
            // opsh's own call failed: the operation's message alone (`db::migrate: postgres at
            // …: connection refused`), no `<builtin>:1:5` nor the code that made the call.
            other if self.builtin => Err(Error::Io(render::message(other))),
            _ => Err(Error::Script {
                rendered: self.sources.runtime_error(display, err),
            }),
        }
    }
}

/// A run stopped because stdout can take no more output.
pub fn output_error() -> Error {
    Error::Output {
        status: crate::output::stream::failed().unwrap_or(crate::output::stream::CLOSED_STDOUT),
    }
}

fn innermost(err: &EvalAltResult) -> &EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => innermost(inner),
        other => other,
    }
}

/// `new` is a reserved word in Rhai, yet `report::new(title)` is the natural name; opsh reserves
/// nothing for it, so the tokenizer hands it over as an ordinary name.
#[allow(deprecated)] // on_parse_token is marked volatile, not deprecated
fn allow_new_as_name(engine: &mut Engine) {
    engine.on_parse_token(|token, _, _| match token {
        rhai::Token::Reserved(name) if name.as_str() == "new" => rhai::Token::Identifier(name),
        other => other,
    });
}

fn set_limits(engine: &mut Engine, max_operations: i64) {
    engine.set_max_operations(u64::try_from(max_operations).unwrap_or(0));
    engine.set_max_call_levels(MAX_CALL_LEVELS);
    engine.set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FN_EXPR_DEPTH);
    engine.set_max_string_size(MAX_STRING_SIZE);
    engine.set_max_array_size(MAX_ARRAY_SIZE);
    engine.set_max_map_size(MAX_MAP_SIZE);
    engine.set_max_modules(MAX_MODULES);
    engine.set_max_variables(MAX_VARIABLES);
    engine.set_max_functions(MAX_FUNCTIONS);
}
