//! Finds the `temporal` CLI binary: `$TEMPORAL_CLI`, then the project-local `.tools/venv` that
//! `scripts/setup-temporal` fills, then `PATH`. A missing binary is an error, never a skip.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Environment variable that overrides where the `temporal` binary is.
pub const TEMPORAL_CLI_ENV: &str = "TEMPORAL_CLI";

/// What to tell a developer whose machine has no `temporal` binary.
pub const INSTALL_HINT: &str = "run scripts/setup-temporal, or set TEMPORAL_CLI";

/// The `temporal` binary could not be found. Fatal: the test run cannot talk to a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocateError {
    /// `TEMPORAL_CLI` names a file that does not exist or is not executable.
    #[error("TEMPORAL_CLI={path} is not an executable file ({INSTALL_HINT})", path = .0.display())]
    OverrideNotExecutable(PathBuf),
    /// Neither the project virtualenv nor `PATH` holds a `temporal` binary.
    #[error("no `temporal` binary at {venv} or on PATH ({INSTALL_HINT})", venv = .venv.display())]
    NotFound {
        /// The project-local location that was tried first.
        venv: PathBuf,
    },
}

/// Locates the `temporal` binary for this process.
pub fn temporal_binary() -> Result<PathBuf, LocateError> {
    resolve(std::env::var_os(TEMPORAL_CLI_ENV), &venv_binary(&workspace_root()), std::env::var_os("PATH"))
}

/// The workspace root, derived from where this crate sits (`<root>/crates/testkit`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("invariant: tempest-testkit lives at <workspace>/crates/testkit")
        .to_path_buf()
}

fn venv_binary(root: &Path) -> PathBuf {
    root.join(".tools/venv/bin/temporal")
}

/// The lookup order, split from the process environment so it can be tested.
fn resolve(override_path: Option<OsString>, venv: &Path, path_var: Option<OsString>) -> Result<PathBuf, LocateError> {
    if let Some(path) = override_path.filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if is_executable(&path) { Ok(path) } else { Err(LocateError::OverrideNotExecutable(path)) };
    }
    if is_executable(venv) {
        return Ok(venv.to_path_buf());
    }
    path_var
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("temporal"))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| LocateError::NotFound { venv: venv.to_path_buf() })
}

fn is_executable(path: &Path) -> bool {
    path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake_binary(dir: &Path, mode: u32) -> PathBuf {
        fs::create_dir_all(dir).expect("create dir");
        let path = dir.join("temporal");
        fs::write(&path, "#!/bin/sh\n").expect("write fake binary");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tempest-testkit-locate-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn override_wins_over_venv_and_path() {
        let dir = scratch_dir("override");
        let chosen = fake_binary(&dir.join("override"), 0o755);
        let venv = fake_binary(&dir.join("venv"), 0o755);
        let on_path = fake_binary(&dir.join("path"), 0o755);
        let found = resolve(Some(chosen.clone().into()), &venv, Some(on_path.parent().expect("dir").into()));
        assert_eq!(found.expect("found"), chosen);
        fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn override_that_is_missing_is_an_error_not_a_fallback() {
        let dir = scratch_dir("missing-override");
        let venv = fake_binary(&dir.join("venv"), 0o755);
        let err = resolve(Some(dir.join("nope").into()), &venv, None).expect_err("must fail");
        assert!(matches!(err, LocateError::OverrideNotExecutable(_)));
        assert!(err.to_string().contains(INSTALL_HINT), "{err}");
        fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn venv_comes_before_path() {
        let dir = scratch_dir("venv-first");
        let venv = fake_binary(&dir.join("venv"), 0o755);
        let on_path = fake_binary(&dir.join("path"), 0o755);
        let found = resolve(None, &venv, Some(on_path.parent().expect("dir").into()));
        assert_eq!(found.expect("found"), venv);
        fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn path_is_searched_in_order_skipping_non_executables() {
        let dir = scratch_dir("path-order");
        let not_executable = fake_binary(&dir.join("a"), 0o644);
        let executable = fake_binary(&dir.join("b"), 0o755);
        let path_var = std::env::join_paths([not_executable.parent().expect("dir"), executable.parent().expect("dir")])
            .expect("join paths");
        let found = resolve(Some(OsString::new()), &dir.join("no-venv/temporal"), Some(path_var));
        assert_eq!(found.expect("found"), executable);
        fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn nothing_found_names_the_install_hint() {
        let dir = scratch_dir("nothing");
        let err = resolve(None, &dir.join("venv/temporal"), Some(dir.clone().into())).expect_err("must fail");
        assert!(matches!(err, LocateError::NotFound { .. }));
        assert!(err.to_string().contains("run scripts/setup-temporal, or set TEMPORAL_CLI"), "{err}");
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("crates/testkit").is_dir());
    }
}
