//! `import "name"` resolves in the site script directories, then the bundled scripts; each
//! module is compiled once per process.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

type SharedModule = Shared<Module>;

use super::catalog::Catalog;
use super::render::Sources;

pub struct Resolver {
    catalog: Rc<Catalog>,
    sources: Sources,
    cache: RefCell<HashMap<String, SharedModule>>,
}

impl Resolver {
    pub fn new(catalog: Rc<Catalog>, sources: Sources) -> Resolver {
        Resolver {
            catalog,
            sources,
            cache: RefCell::default(),
        }
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        if let Some(module) = self.cache.borrow().get(path) {
            return Ok(module.clone());
        }
        let script = self
            .catalog
            .module(path)
            .map_err(|e| EvalAltResult::ErrorModuleNotFound(format!("{path} ({e})"), pos))?;
        self.sources.add(&script.display, &script.source);
        let in_module = |err: Box<EvalAltResult>| {
            Box::new(EvalAltResult::ErrorInModule(
                script.display.clone(),
                err,
                pos,
            ))
        };
        let mut ast = engine
            .compile(&*script.source)
            .map_err(|e| in_module(e.into()))?;
        ast.set_source(script.display.as_str());
        let mut module = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(in_module)?;
        module.build_index();
        let module: SharedModule = module.into();
        self.cache
            .borrow_mut()
            .insert(path.to_string(), module.clone());
        Ok(module)
    }
}
