//! tempest-registry: loads a directory of Tempest definition files (YAML "entries") into
//! validated, typed entries, the env system, and the start order. No Lua, no Temporal.
//!
//! # Public API
//!
//! - [`Registry::load`]`(dir) -> Result<Registry, LoadErrors>` reads every `*.yaml`/`*.yml`
//!   under `dir` that has a top-level `namespace`; [`Registry::load_with`] takes
//!   [`LoadOptions`] (an injectable [`ProcessEnv`], so tests never touch real env vars).
//! - [`Registry`] gives [`Entry`]s by [`EntryId`] ([`Registry::get`]), typed views
//!   ([`Registry::clients`], [`Registry::workers`], [`Registry::workflows`],
//!   [`Registry::activities`], [`Registry::lua_entries`]), [`Registry::task_queue`],
//!   [`Registry::workflow_type`], [`Registry::start_order`], [`Registry::warnings`] and
//!   [`Registry::env`].
//! - [`LoadErrors`] holds a [`Report`]: every error and warning of every file, displayed one
//!   per line, sorted by file, line and column, each in the form
//!   ``path:line:col: entry `ns:name`: field `a.b`: what is wrong (what is expected)``.
//!   Callers add their own findings with [`Diagnostic::new`] and [`Report::push`].
//!   [`LoadErrors::lua_entries`] hands back the Lua entries read without errors of their own
//!   (same shape as [`Registry::lua_entries`]), so a checker can report Lua problems in the
//!   same run; their references (imports, workers) may be among the errors.
//! - [`Env`] is the live env system (SPEC §3): [`Env::get`], [`Env::set`], [`Env::get_all`],
//!   failing with [`EnvError`] (`NotFound`, `PermissionDenied`, `Invalid`, `Io`).
//!
//! # Loading, in order
//!
//! 1. Find and parse the files (`source`), declare their entries (`loader`): duplicate names
//!    are errors, unknown kinds are warnings and the entry is ignored.
//! 2. Read the env entries, expanding their placeholders from the process environment, and
//!    build the [`Env`].
//! 3. Read every other entry (`kinds/*`), expanding `${env:NAME|default}` through the [`Env`],
//!    reading `file://` Lua sources, and recording references.
//! 4. Check references, env router loops and dependency cycles (`check`), and compute the
//!    start order (`graph`).

mod check;
mod diagnostic;
mod env;
mod graph;
mod id;
mod kinds;
mod loader;
mod placeholder;
mod reference;
mod registry;
mod secret;
mod source;
mod suggest;
mod value;
mod walk;

pub use diagnostic::{Diagnostic, LoadErrors, Report, Severity};
pub use env::{Env, EnvError, FileStorageConfig, MapEnv, OsEnv, ProcessEnv, StorageConfig, VariableConfig};
pub use id::EntryId;
pub use kinds::client::{ApiKeySource, Auth, ClientConfig, HealthCheck, PemSource, TlsConfig};
pub use kinds::lifecycle::{Lifecycle, RestartPolicy};
pub use kinds::lua::{LuaEntry, LuaKind, LuaSource, Registration, WORKFLOW_MODULES};
pub use kinds::worker::{Versioning, VersioningBehavior, WorkerConfig, WorkerOptions};
pub use kinds::{Entry, EntryKind, Location};
pub use registry::{LoadOptions, Registry};
pub use secret::Secret;
pub use value::Value;
pub use walk::{Position, Spanned};
