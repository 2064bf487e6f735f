//! Where definition files live: finding every YAML file under DIR, the paths shown to users,
//! and resolving `file://` references so that they stay inside DIR.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The loaded directory, as the user gave it and as it really is on disk.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    /// The directory as given, cleaned of `.` components; prefixes every displayed path.
    pub(crate) display: PathBuf,
    /// The directory with symlinks resolved.
    pub(crate) canonical: PathBuf,
}

impl Root {
    pub(crate) fn open(dir: &Path) -> io::Result<Root> {
        let canonical = fs::canonicalize(dir)?;
        if !canonical.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a directory"));
        }
        Ok(Root { display: clean(dir), canonical })
    }

    /// How a path under the root is shown: the root as given joined with the relative part.
    pub(crate) fn display_of(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.canonical) {
            Ok(relative) => self.display.join(relative),
            Err(_) => path.to_path_buf(),
        }
    }
}

/// One definition file.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    /// The path shown in diagnostics.
    pub(crate) display: PathBuf,
    /// The real path (under the canonical root).
    pub(crate) path: PathBuf,
}

impl SourceFile {
    /// The directory `file://` references are relative to.
    pub(crate) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }
}

/// Every `*.yaml` / `*.yml` file under the root, sorted by path, skipping hidden directories.
pub(crate) fn discover(root: &Root) -> io::Result<Vec<SourceFile>> {
    let mut found = Vec::new();
    visit(&root.canonical, &mut found)?;
    found.sort();
    Ok(found.into_iter().map(|path| SourceFile { display: root.display_of(&path), path }).collect())
}

fn visit(dir: &Path, found: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let file_type = entry.file_type()?;
        if file_type.is_dir() && !hidden {
            visit(&path, found)?;
        } else if file_type.is_file() && path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml") {
            found.push(path);
        }
    }
    Ok(())
}

/// Why a `file://` reference was rejected.
#[derive(Debug)]
pub(crate) enum FileRefError {
    /// The path leaves the loaded directory (directly, through `..`, or through a symlink).
    Escapes,
    /// The file does not exist.
    NotFound { display: PathBuf },
    /// The file exists but could not be read.
    Unreadable { display: PathBuf, error: io::Error },
}

/// Reads the file that `reference` (with or without `file://`) names, relative to `file`'s
/// directory; returns the text and the path to show for it.
pub(crate) fn read_reference(
    root: &Root,
    file: &SourceFile,
    reference: &str,
) -> Result<(String, PathBuf), FileRefError> {
    let relative = reference.strip_prefix("file://").unwrap_or(reference);
    let joined = normalize(&file.dir().join(relative));
    if !joined.starts_with(&root.canonical) {
        return Err(FileRefError::Escapes);
    }
    let display = root.display_of(&joined);
    let real = match fs::canonicalize(&joined) {
        Ok(real) => real,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(FileRefError::NotFound { display });
        }
        Err(error) => return Err(FileRefError::Unreadable { display, error }),
    };
    if !real.starts_with(&root.canonical) {
        return Err(FileRefError::Escapes);
    }
    fs::read_to_string(&real)
        .map(|text| (text, display.clone()))
        .map_err(|error| FileRefError::Unreadable { display, error })
}

/// A path as written (`file://` allowed), relative to the YAML file's directory `dir`.
pub(crate) fn relative_path(dir: &Path, text: &str) -> PathBuf {
    let text = text.trim();
    dir.join(text.strip_prefix("file://").unwrap_or(text))
}

/// Resolves `.` and `..` without touching the file system.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Drops `.` components so `./src` displays as `src`.
fn clean(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(Path::new("/a/b/../c/./d")), PathBuf::from("/a/c/d"));
        assert_eq!(clean(Path::new("./src/./app")), PathBuf::from("src/app"));
    }

    #[test]
    fn rejects_escapes_and_symlinks() {
        let outer = tempfile::tempdir().unwrap();
        let root_dir = outer.path().join("project");
        fs::create_dir_all(root_dir.join("sub")).unwrap();
        fs::write(outer.path().join("outside.lua"), "return 1").unwrap();
        fs::write(root_dir.join("sub/inside.lua"), "return 2").unwrap();
        let root = Root::open(&root_dir).unwrap();
        let file = SourceFile { display: "p/_index.yaml".into(), path: root.canonical.join("_index.yaml") };

        let (text, display) = read_reference(&root, &file, "file://sub/inside.lua").unwrap();
        assert_eq!(text, "return 2");
        assert!(display.ends_with("project/sub/inside.lua"));
        assert!(matches!(read_reference(&root, &file, "file://../outside.lua"), Err(FileRefError::Escapes)));
        assert!(matches!(read_reference(&root, &file, "file://nope.lua"), Err(FileRefError::NotFound { .. })));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outer.path().join("outside.lua"), root_dir.join("link.lua")).unwrap();
            assert!(matches!(read_reference(&root, &file, "file://link.lua"), Err(FileRefError::Escapes)));
        }
    }
}
