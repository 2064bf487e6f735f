//! Valid projects load: the orders example, a project using every kind, env lookups through
//! every storage, placeholders, and inline source positions. A failed load still hands back
//! the Lua entries that read without errors of their own.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tempest_registry::{
    ApiKeySource, Auth, EntryId, EntryKind, LoadOptions, LuaKind, MapEnv, Registration, Registry, StorageConfig, Value,
    VersioningBehavior,
};

fn id(text: &str) -> EntryId {
    EntryId::resolve(text, "app").expect("valid id")
}

fn load(dir: &Path, process: &[(&str, &str)]) -> Registry {
    let options = LoadOptions { process_env: Arc::new(process.iter().copied().collect::<MapEnv>()) };
    Registry::load_with(dir, options).unwrap_or_else(|errors| panic!("load failed:\n{errors}"))
}

/// A copy of `examples/orders` with stand-in Lua files (the real ones are written elsewhere).
fn orders_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/orders/_index.yaml");
    fs::copy(example, dir.path().join("_index.yaml")).expect("copy example");
    fs::write(dir.path().join("order_workflow.lua"), "return { main = function() end }\n").expect("lua");
    fs::write(dir.path().join("payment.lua"), "return { charge = function() end }\n").expect("lua");
    dir
}

#[test]
fn orders_example_loads_in_start_order() {
    let dir = orders_copy();
    let registry = load(dir.path(), &[]);
    let order: Vec<String> = registry.start_order().iter().map(ToString::to_string).collect();
    assert_eq!(order, ["app:temporal_client", "app:worker", "app:order_workflow", "app:charge_payment"]);
    assert!(registry.warnings().is_empty());

    let client = registry.client(&id("temporal_client")).expect("client");
    assert_eq!(client.address, "localhost:7233", "placeholder default");
    assert_eq!(client.namespace, "default");
    assert_eq!(client.connection_timeout, Duration::from_secs(10));
    assert_eq!(client.auth, Auth::None);
    assert!(client.lifecycle.auto_start);
    assert_eq!(registry.task_queue(&id("worker")).as_deref(), Some("orders"));
    let worker = registry.worker(&id("worker")).expect("worker");
    assert_eq!(worker.lifecycle.depends_on, [id("temporal_client")]);
    assert_eq!(worker.options.max_cached_workflows, 1000);

    let (workflow_id, workflow) = registry.workflows().next().expect("workflow");
    assert_eq!(workflow_id, &id("order_workflow"));
    assert_eq!(workflow.method.as_deref(), Some("main"));
    assert_eq!(workflow.modules, ["funcs", "time"]);
    assert_eq!(workflow.source.text, "return { main = function() end }\n");
    assert_eq!(workflow.source.chunk_name, dir.path().canonicalize().expect("canon").join("order_workflow.lua"));
    assert_eq!(registry.workflow_type(workflow_id).as_deref(), Some("app:order_workflow"));
    let (_, activity) = registry.activities().next().expect("activity");
    assert_eq!(activity.registration, Some(Registration::Activity { worker: id("worker"), local: false }));
    assert_eq!(activity.modules, ["http_client", "json"]);
}

#[test]
fn placeholder_overrides_the_example_address() {
    let dir = orders_copy();
    let registry = load(dir.path(), &[("TEMPORAL_ADDRESS", "temporal.prod:7233")]);
    assert_eq!(registry.client(&id("temporal_client")).expect("client").address, "temporal.prod:7233");
}

#[test]
fn displays_paths_relative_to_the_given_dir() {
    let registry = load(Path::new("tests/fixtures/placeholder_default_used"), &[]);
    let client = registry.get(&id("temporal_client")).expect("client");
    assert_eq!(client.location.to_string(), "tests/fixtures/placeholder_default_used/_index.yaml:5:11");
    let config = registry.client(&id("temporal_client")).expect("client");
    assert_eq!((config.address.as_str(), config.namespace.as_str()), ("localhost:7233", "default"));
    assert_eq!(config.tq_prefix, "${literal}-", "$${{ escapes");
    assert_eq!(registry.task_queue(&id("worker")).as_deref(), Some("${literal}-orders"));
}

const EVERY_KIND: &str = r#"
namespace: app
entries:
  - name: os_env
    kind: env.storage.os
  - name: file_env
    kind: env.storage.file
    file_path: secrets/app.env
    auto_create: true
    file_mode: "0600"
  - name: memory_env
    kind: env.storage.memory
  - name: constants
    kind: env.storage.static
    values:
      REGION: eu-west-1
      RETRIES: 3
  - name: layered
    kind: env.storage.router
    storages: [memory_env, file_env, constants]
  - name: api_key
    kind: env.variable
    storage: os_env
    variable: TEMPORAL_API_KEY
  - name: build
    kind: env.variable
    storage: os_env
    variable: BUILD_ID
  - name: region
    kind: env.variable
    storage: layered
    variable: REGION
  - name: db_url
    kind: env.variable
    storage: file_env
    variable: DB_URL
  - name: token
    kind: env.variable
    storage: memory_env
    default: "none"
  - name: pinned
    kind: env.variable
    storage: constants
    variable: RETRIES
    readonly: true

  - name: worker
    kind: temporal.worker
    client: temporal_client
    task_queue: "${env:REGION}-orders"
    worker_options:
      max_concurrent_workflow_task_pollers: 4
      worker_activities_per_second: 12.5
      deadlock_detection_timeout: 0
      sticky_schedule_to_start_timeout: 2500
      use_versioning: true
      deployment_name: orders
      build_id_env: BUILD_ID
      default_versioning_behavior: auto_upgrade
    lifecycle:
      auto_start: "${env:AUTO_START|true}"
      stop_timeout: 30s
      restart:
        max_attempts: 5
        backoff_factor: 1.5

  - name: temporal_client
    kind: temporal.client
    address: "temporal.${env:REGION}.example:7233"
    tq_prefix: "prod-"
    auth:
      type: api_key
      api_key_env: TEMPORAL_API_KEY
    health_check:
      enabled: true
    lifecycle:
      auto_start: true

  - name: helpers
    kind: library.lua
    source: |
      local M = {}
      function M.double(x) return x * 2 end
      return M

  - name: order_workflow
    kind: workflow.lua
    source: file://flows/order.lua
    modules: [workflow, funcs]
    imports:
      util: helpers
    meta:
      owner: team-orders
      temporal:
        workflow:
          worker: worker
          name: OrderWorkflow

  - name: ship
    kind: process.lua
    source: "return function() end"
    meta:
      temporal:
        activity:
          worker: app:worker
          local: true
      options:
        activity.start_to_close_timeout: "30s"

  - name: report
    kind: function.lua
    source: "return function() return 1 end"
"#;

#[test]
fn every_kind_loads_with_env_lookups() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("_index.yaml"), EVERY_KIND).expect("yaml");
    fs::create_dir(dir.path().join("flows")).expect("dir");
    fs::write(dir.path().join("flows/order.lua"), "return { main = function() end }").expect("lua");
    fs::write(dir.path().join("notes.yaml"), "title: not a definition file\n").expect("yaml");
    let registry = load(dir.path(), &[("TEMPORAL_API_KEY", "sekret"), ("BUILD_ID", "b42")]);

    let order: Vec<String> = registry.start_order().iter().map(ToString::to_string).collect();
    assert_eq!(order, ["app:temporal_client", "app:worker", "app:order_workflow", "app:ship"]);

    let client = registry.client(&id("temporal_client")).expect("client");
    assert_eq!(client.address, "temporal.eu-west-1.example:7233");
    match &client.auth {
        Auth::ApiKey(ApiKeySource::Value(secret)) => assert_eq!(secret.expose(), "sekret"),
        other => panic!("unexpected auth {other:?}"),
    }
    assert!(!format!("{client:?}").contains("sekret"), "secrets stay out of Debug");
    assert!(client.tls.enabled, "api_key implies TLS");
    assert!(client.health_check.enabled);
    assert_eq!(client.health_check.interval, Duration::from_secs(30));

    let worker = registry.worker(&id("worker")).expect("worker");
    assert_eq!(registry.task_queue(&id("worker")).as_deref(), Some("prod-eu-west-1-orders"));
    assert_eq!(worker.options.max_concurrent_workflow_task_pollers, 4);
    assert_eq!(worker.options.worker_activities_per_second, 12.5);
    assert_eq!(worker.options.deadlock_detection_timeout, Duration::from_secs(1));
    assert_eq!(worker.options.sticky_schedule_to_start_timeout, Duration::from_millis(2500));
    let versioning = worker.options.versioning.as_ref().expect("versioning");
    assert_eq!((versioning.build_id.as_str(), versioning.default_behavior), ("b42", VersioningBehavior::AutoUpgrade));
    assert!(worker.lifecycle.auto_start, "typed placeholder default");
    assert_eq!(worker.lifecycle.stop_timeout, Duration::from_secs(30));
    assert_eq!(worker.lifecycle.start_timeout, Duration::from_secs(10));
    assert_eq!((worker.lifecycle.restart.max_attempts, worker.lifecycle.restart.backoff_factor), (5, 1.5));
    assert_eq!(worker.lifecycle.restart.max_delay, Duration::from_secs(90));

    let workflow = registry.lua(&id("order_workflow")).expect("workflow");
    assert_eq!(workflow.imports.get("util"), Some(&id("helpers")));
    assert_eq!(registry.workflow_type(&id("order_workflow")).as_deref(), Some("OrderWorkflow"));
    let entry = registry.get(&id("order_workflow")).expect("entry");
    assert_eq!(entry.meta.get("owner"), Some(&Value::String("team-orders".into())));

    let library = registry.lua(&id("helpers")).expect("library");
    assert_eq!(library.kind, LuaKind::Library);
    assert!(library.source.inline);
    assert_eq!(library.source.line_offset, 81, "Lua line 1 is YAML line 82");
    assert_eq!(EVERY_KIND.lines().nth(81), Some("      local M = {}"));

    let ship = registry.lua(&id("ship")).expect("process");
    assert_eq!(ship.registration, Some(Registration::Activity { worker: id("worker"), local: true }));
    assert_eq!(ship.options.get("activity.start_to_close_timeout"), Some(&Value::String("30s".into())));
    assert_eq!(registry.activities().count(), 1, "only registered functions are activities");
    assert!(matches!(
        registry.get(&id("file_env")).map(|e| &e.kind),
        Some(EntryKind::EnvStorage(StorageConfig::File(file))) if file.file_mode == 0o600
    ));

    let env = registry.env();
    assert_eq!(env.get("TEMPORAL_API_KEY", "app").expect("os"), "sekret");
    assert_eq!(env.get("REGION", "app").expect("static via router"), "eu-west-1");
    assert_eq!(env.get("RETRIES", "app").expect("static number"), "3");
    assert_eq!(env.get("token", "app").expect("memory default"), "none");
    assert_eq!(env.get("HOME", "app").expect_err("not a variable").kind(), "NotFound");
    env.set("REGION", "app", "us-east-1").expect("router writes to memory");
    assert_eq!(env.get("app:region", "other").expect("by id"), "us-east-1");
    env.set("DB_URL", "app", "postgres://db").expect("file write");
    let written = fs::read_to_string(dir.path().join("secrets/app.env")).expect("created");
    assert_eq!(written, "DB_URL=postgres://db\n");
    assert_eq!(env.set("RETRIES", "app", "4").expect_err("readonly").kind(), "PermissionDenied");
    assert_eq!(env.set("TEMPORAL_API_KEY", "app", "x").expect_err("os").kind(), "PermissionDenied");
    let all = env.get_all();
    assert_eq!(all.get("DB_URL").map(String::as_str), Some("postgres://db"));
    assert_eq!(all.get("app:token").map(String::as_str), Some("none"));
}

#[test]
fn missing_directory_is_one_error() {
    let errors = Registry::load(Path::new("tests/no-such-dir")).expect_err("missing dir");
    let text = errors.to_string();
    assert!(text.starts_with("tests/no-such-dir: cannot load definitions: "), "{text}");
    assert_eq!(errors.errors().count(), 1);
}

#[test]
fn a_failed_load_keeps_the_lua_entries_without_errors_of_their_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = r#"
namespace: app
entries:
  - name: helpers
    kind: library.lua
    source: "return {}"
  - name: charge
    kind: function.lua
    source: "return function() end"
    imports: { helpers: helpers }
    meta: { temporal: { activity: { worker: app:wroker } } }
  - name: flow
    kind: workflow.lua
    source: "return { main = function() end }"
    modules: [http_client]
  - name: client
    kind: temporal.client
    adress: "localhost:7233"
"#;
    fs::write(dir.path().join("_index.yaml"), yaml).expect("yaml");
    let errors = Registry::load(dir.path()).expect_err("bad worker, module and field");
    let fields: Vec<String> = errors
        .errors()
        .map(|error| {
            let entry = error.entry.as_ref().map(ToString::to_string);
            format!("{} {}", entry.unwrap_or_default(), error.field.as_deref().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        fields,
        [
            "app:charge meta.temporal.activity.worker",
            "app:flow meta.temporal.workflow.worker",
            "app:flow modules[0]",
            "app:client adress",
        ],
        "{errors}"
    );
    // `charge` is kept: only its reference is wrong. `flow` lost a `modules:` item.
    let ids: Vec<String> = errors.lua_entries().map(|(id, _)| id.to_string()).collect();
    assert_eq!(ids, ["app:helpers", "app:charge"]);
    let (_, charge) = errors.lua_entries().nth(1).expect("charge");
    assert_eq!(charge.imports.get("helpers"), Some(&id("helpers")));
}

#[test]
fn a_missing_directory_hands_back_no_lua_entries() {
    let errors = Registry::load(Path::new("tests/no-such-dir")).expect_err("missing dir");
    assert_eq!(errors.lua_entries().count(), 0);
}
