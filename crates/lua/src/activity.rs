//! Activity runtime: runs `function.lua` / `process.lua` entries as Temporal activities.
//!
//! A [`FunctionCatalog`] (sources, shareable across threads) is loaded lazily into an
//! [`ActivityVm`] per OS thread: each entry's chunk runs once per VM, in a global environment of
//! its own, and its method is kept for every later call (as the reference caches chunk results per
//! process). Entries never see each other's globals; state a function keeps in module-level
//! variables lives as long as its VM. Blocking module calls (HTTP, sleep) block the calling
//! thread, which is why the Temporal side runs calls on a blocking thread pool.

use std::collections::HashMap;
use std::sync::Arc;

use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::convert::{Data, from_data, to_data};
use crate::failure::Failure;
use crate::sandbox::{self, Sandbox};

/// One function entry.
#[derive(Debug, Clone)]
pub struct FunctionCode {
    pub entry_id: String,
    /// Chunk name shown in tracebacks, e.g. `examples/orders/payment.lua`.
    pub chunk_name: String,
    pub source: String,
    pub method: String,
    pub modules: Vec<String>,
}

/// The function entries a worker can run, by entry ID.
#[derive(Debug, Default)]
pub struct FunctionCatalog {
    /// Entry IDs to their place in `functions` (foldhash: looked up on every activity task).
    index: HashMap<String, usize, foldhash::fast::RandomState>,
    functions: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    code: FunctionCode,
    may_block: bool,
    reads_call: bool,
}

/// One function of a [`FunctionCatalog`], looked up once per call: everything a call asks of the
/// catalog afterwards (how to run it, which VM slot holds its method) costs no second lookup.
#[derive(Debug, Clone, Copy)]
pub struct CatalogFunction<'a> {
    slot: usize,
    entry: &'a Entry,
}

impl CatalogFunction<'_> {
    /// Whether calls may block their thread: the entry may `require` a module that waits on
    /// I/O or the clock (`http_client`, `time`). Others are pure Lua computations.
    pub fn may_block(&self) -> bool {
        self.entry.may_block
    }

    /// Whether calls can read their [`ActivityCall`](crate::modules::activity::ActivityCall): the
    /// entry may `require` `activity` (info, heartbeat, cancellation) or `http_client` (which
    /// obeys the cancellation flag). Others run without one.
    pub fn reads_call(&self) -> bool {
        self.entry.reads_call
    }
}

impl FunctionCatalog {
    pub fn new(functions: impl IntoIterator<Item = FunctionCode>) -> Arc<Self> {
        let mut catalog = FunctionCatalog::default();
        for code in functions {
            let requires = |names: &[&str]| code.modules.iter().any(|m| names.contains(&m.as_str()));
            let (may_block, reads_call) = (requires(BLOCKING_MODULES), requires(&["activity", "http_client"]));
            let entry = Entry { code, may_block, reads_call };
            match catalog.index.get(&entry.code.entry_id) {
                Some(&slot) => catalog.functions[slot] = entry,
                None => {
                    catalog.index.insert(entry.code.entry_id.clone(), catalog.functions.len());
                    catalog.functions.push(entry);
                }
            }
        }
        Arc::new(catalog)
    }

    /// The function registered as `entry_id`.
    pub fn get(&self, entry_id: &str) -> Option<CatalogFunction<'_>> {
        self.index.get(entry_id).map(|&slot| CatalogFunction { slot, entry: &self.functions[slot] })
    }

    pub fn contains(&self, entry_id: &str) -> bool {
        self.index.contains_key(entry_id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().map(|f| f.code.entry_id.as_str())
    }
}

/// Modules whose functions can block the calling thread.
const BLOCKING_MODULES: &[&str] = &["http_client", "time"];

/// A VM for running activities on one thread.
pub struct ActivityVm {
    lua: Lua,
    catalog: Arc<FunctionCatalog>,
    /// Each entry's method once its chunk has run, by the entry's place in the catalog.
    loaded: Vec<Option<Function>>,
    env_meta: Table,
    modules: Table,
    /// `caller(f, ...)` calls `f` so that `error(err)` keeps err's kind.
    caller: Function,
}

impl std::fmt::Debug for ActivityVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityVm").field("loaded", &self.loaded.iter().flatten().count()).finish_non_exhaustive()
    }
}

impl ActivityVm {
    pub fn new(catalog: Arc<FunctionCatalog>) -> mlua::Result<Self> {
        let lua = sandbox::new_vm(Sandbox::Activity)?;
        let globals = lua.globals();
        let modules = lua.create_table()?;
        let errors = sandbox::freeze(&lua, "errors", &crate::modules::errors::register(&lua)?)?;
        globals.raw_set("errors", errors.clone())?;
        modules.raw_set("errors", errors)?;
        modules.raw_set("json", sandbox::freeze(&lua, "json", &crate::modules::json::register(&lua)?)?)?;
        modules.raw_set("time", sandbox::freeze(&lua, "time", &crate::modules::time::register(&lua)?)?)?;
        modules.raw_set("uuid", sandbox::freeze(&lua, "uuid", &crate::modules::uuid::register(&lua)?)?)?;
        modules.raw_set("crypto", sandbox::freeze(&lua, "crypto", &crate::modules::crypto::register(&lua)?)?)?;
        modules.raw_set("base64", sandbox::freeze(&lua, "base64", &crate::modules::base64::register(&lua)?)?)?;
        modules.raw_set("hash", sandbox::freeze(&lua, "hash", &crate::modules::hash::register(&lua)?)?)?;
        modules.raw_set("ctx", sandbox::freeze(&lua, "ctx", &crate::modules::ctx::register(&lua)?)?)?;
        modules.raw_set("activity", sandbox::freeze(&lua, "activity", &crate::modules::activity::register(&lua)?)?)?;
        modules.raw_set("yaml", sandbox::freeze(&lua, "yaml", &crate::modules::yaml::register(&lua)?)?)?;
        modules.raw_set(
            "http_client",
            sandbox::freeze(&lua, "http_client", &crate::modules::http_client::register(&lua)?)?,
        )?;
        for name in ["string", "table", "math", "utf8", "os", "coroutine"] {
            let table: Table = globals.get(name)?;
            globals.raw_set(name, sandbox::freeze(&lua, name, &table)?)?;
        }
        let env_meta = sandbox::environment_meta(&lua, &globals)?;
        let caller = crate::failure::protect(&lua, lua.load("return function(f, ...) return f(...) end").eval()?)?;
        let loaded = vec![None; catalog.functions.len()];
        Ok(ActivityVm { lua, catalog, loaded, env_meta, modules, caller })
    }

    /// Whether `entry_id` is one of the catalog's functions.
    pub fn knows(&self, entry_id: &str) -> bool {
        self.catalog.contains(entry_id)
    }

    /// Calls `entry_id` with `args` under `context` (what `ctx` reads); the return convention
    /// decides success or failure.
    pub fn call(
        &mut self,
        entry_id: &str,
        args: &[Data],
        context: Option<crate::modules::ctx::ContextMap>,
    ) -> Result<Data, Failure> {
        self.call_as(entry_id, args, context, None)
    }

    /// [`ActivityVm::call`] as a Temporal activity: `activity` reads `call`, and its cancellation
    /// flag also aborts `http_client` requests.
    pub fn call_as(
        &mut self,
        entry_id: &str,
        args: &[Data],
        context: Option<crate::modules::ctx::ContextMap>,
        call: Option<crate::modules::activity::ActivityCall>,
    ) -> Result<Data, Failure> {
        let catalog = self.catalog.clone();
        let Some(function) = catalog.get(entry_id) else {
            return Err(Failure::new(
                crate::failure::Kind::NOT_FOUND,
                format!("function `{entry_id}` is not registered"),
            )
            .with_retryable(Some(false)));
        };
        self.call_function(function, args, context, call)
    }

    /// [`ActivityVm::call_as`] for a function already looked up in this VM's catalog.
    pub fn call_function(
        &mut self,
        function: CatalogFunction<'_>,
        args: &[Data],
        context: Option<crate::modules::ctx::ContextMap>,
        call: Option<crate::modules::activity::ActivityCall>,
    ) -> Result<Data, Failure> {
        debug_assert!(
            std::ptr::eq(function.entry, &self.catalog.functions[function.slot]),
            "a function of another catalog"
        );
        // Most calls carry no call object and no context: the VM's app data is then left alone.
        let with_call = call.is_some();
        if let Some(call) = call {
            self.lua.set_app_data(crate::modules::http_client::Cancellation(call.cancelled.clone()));
            self.lua.set_app_data(call);
        }
        let with_context = context.is_some();
        if let Some(context) = context {
            self.lua.set_app_data(crate::modules::ctx::CallContext(Some(std::rc::Rc::new(context))));
        }
        let result = self.call_inner(function, args).unwrap_or_else(|e| Err(Failure::from_lua_error(&e)));
        if with_context {
            self.lua.remove_app_data::<crate::modules::ctx::CallContext>();
        }
        if with_call {
            self.lua.remove_app_data::<crate::modules::activity::ActivityCall>();
            self.lua.remove_app_data::<crate::modules::http_client::Cancellation>();
        }
        result
    }

    /// The entry's method: loaded on first use (chunk run in the entry's own environment).
    fn method(&mut self, function: CatalogFunction<'_>) -> mlua::Result<Result<Function, Failure>> {
        if let Some(Some(method)) = self.loaded.get(function.slot) {
            return Ok(Ok(method.clone()));
        }
        let code = &function.entry.code;
        let env = sandbox::run_environment(&self.lua, &self.env_meta)?;
        env.raw_set("require", self.require_function(code)?)?;
        let chunk = self
            .lua
            .load(&code.source)
            .set_name(format!("@{}", code.chunk_name))
            .set_environment(env)
            .into_function()?;
        let module: Value = self.caller.call(chunk)?;
        let method = match &module {
            Value::Function(f) => f.clone(),
            Value::Table(t) => match t.get::<Value>(code.method.as_str())? {
                Value::Function(f) => f,
                _ => return Ok(Err(method_missing(code))),
            },
            _ => return Ok(Err(method_missing(code))),
        };
        self.loaded[function.slot] = Some(method.clone());
        Ok(Ok(method))
    }

    fn call_inner(&mut self, function: CatalogFunction<'_>, args: &[Data]) -> mlua::Result<Result<Data, Failure>> {
        let code = &function.entry.code;
        let method = match self.method(function)? {
            Ok(method) => method,
            Err(failure) => return Ok(Err(failure)),
        };
        let mut lua_args = Vec::with_capacity(args.len() + 1);
        lua_args.push(Value::Function(method));
        for data in args {
            lua_args.push(from_data(&self.lua, data)?);
        }
        let results: MultiValue = self.caller.call(MultiValue::from_vec(lua_args))?;
        if let Some(failure) = results.get(1).and_then(Failure::from_return) {
            return Ok(Err(failure));
        }
        let result = results.front().cloned().unwrap_or(Value::Nil);
        Ok(to_data(&result).map_err(|e| {
            Failure::invalid(format!("{}: cannot encode the result: {}", code.entry_id, e.with_root("result")))
        }))
    }

    fn require_function(&self, code: &FunctionCode) -> mlua::Result<Function> {
        let allowed = code.modules.clone();
        let entry = code.entry_id.clone();
        let modules = self.modules.clone();
        self.lua.create_function(move |_, name: String| {
            if !allowed.iter().any(|m| m == &name) {
                return Err(mlua::Error::runtime(format!(
                    "module `{name}` is not in the `modules:` list of entry `{entry}`; add it there"
                )));
            }
            match modules.raw_get::<Value>(name.as_str())? {
                Value::Nil => Err(mlua::Error::runtime(format!("module `{name}` is not available in Tempest yet"))),
                module => Ok(module),
            }
        })
    }
}

fn method_missing(code: &FunctionCode) -> Failure {
    Failure::internal(format!(
        "entry {}: method {:?} not found (the chunk must return a function or a table with a function {:?})",
        code.entry_id, code.method, code.method
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm(source: &str) -> ActivityVm {
        ActivityVm::new(FunctionCatalog::new([FunctionCode {
            entry_id: "app:f".into(),
            chunk_name: "f.lua".into(),
            source: source.into(),
            method: "run".into(),
            modules: vec!["json".into(), "errors".into()],
        }]))
        .unwrap()
    }

    #[test]
    fn return_convention() {
        let mut v = vm("return { run = function(a, b) return { sum = a + b } end }");
        assert_eq!(
            v.call("app:f", &[Data::Json(json!(1)), Data::Json(json!(2))], None),
            Ok(Data::Json(json!({"sum": 3})))
        );
        let mut v = vm("return { run = function() return nil, 'bad input' end }");
        let err = v.call("app:f", &[], None).unwrap_err();
        assert_eq!((err.kind.as_str(), err.message.as_str(), err.retryable), ("Internal", "bad input", Some(false)));
        let mut v = vm(
            "return { run = function() return nil, errors.new{kind = errors.NOT_FOUND, message = 'gone', retryable = false} end }",
        );
        let err = v.call("app:f", &[], None).unwrap_err();
        assert_eq!((err.kind.as_str(), err.retryable), ("NotFound", Some(false)));
        let mut v = vm("return { run = function() error('kaboom') end }");
        let err = v.call("app:f", &[], None).unwrap_err();
        assert_eq!(err.kind.as_str(), "Internal");
        assert!(err.message.contains("f.lua:1: kaboom"), "{}", err.message);
    }

    #[test]
    fn raised_error_objects_keep_their_kind() {
        let mut v = vm("return { run = function() error(errors.new{kind = errors.CONFLICT, message = 'taken'}) end }");
        let err = v.call("app:f", &[], None).unwrap_err();
        assert_eq!((err.kind.as_str(), err.message.as_str()), ("Conflict", "taken"));
    }

    #[test]
    fn the_chunk_runs_once_and_entries_do_not_share_globals() {
        let mut v = ActivityVm::new(FunctionCatalog::new(["a", "b"].map(|name| FunctionCode {
            entry_id: format!("app:{name}"),
            chunk_name: format!("{name}.lua"),
            source: "loads = (loads or 0) + 1 calls = 0 return { run = function() calls = calls + 1 return { loads = loads, calls = calls } end }".into(),
            method: "run".into(),
            modules: vec![],
        })))
        .unwrap();
        assert_eq!(v.call("app:a", &[], None), Ok(Data::Json(json!({"loads": 1, "calls": 1}))));
        assert_eq!(v.call("app:a", &[], None), Ok(Data::Json(json!({"loads": 1, "calls": 2}))));
        assert_eq!(v.call("app:b", &[], None), Ok(Data::Json(json!({"loads": 1, "calls": 1}))));
    }

    #[test]
    fn unknown_function_is_not_found() {
        let mut v = vm("return { run = function() end }");
        let err = v.call("app:missing", &[], None).unwrap_err();
        assert_eq!(err.kind.as_str(), "NotFound");
    }
}
