//! A module named by path in a WAGI `modules.toml` or a Spin manifest: a
//! plain path or a `file://` URL, resolved against the file's own folder
//! (never the working directory, which would make the same file name
//! different programs depending on where the server was started), and
//! refused with a clear message when it is remote (`oci:`, `bindle:`,
//! `https:`).

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

/// The module file `reference` names, relative to `base` (the config
/// file's folder), as the real path of an existing file; what is wrong
/// otherwise.
pub fn resolve(reference: &str, base: &Path) -> Result<PathBuf, String> {
    let path = local_path(reference)?;
    let path = if path.is_absolute() {
        path
    } else {
        base.join(&path)
    };
    match path.canonicalize() {
        Ok(real) if real.is_file() => Ok(real),
        Ok(real) => Err(format!(
            "module {reference:?} names {}, which is not a file",
            real.display()
        )),
        Err(_) => Err(missing(reference, &path)),
    }
}

/// The path a local reference holds.
fn local_path(reference: &str) -> Result<PathBuf, String> {
    let scheme = reference
        .split_once(':')
        .map(|(scheme, _)| scheme)
        .filter(|scheme| {
            scheme.len() > 1
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
    match scheme.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(PathBuf::from(reference)),
        Some("file") => {
            let rest = &reference["file:".len()..];
            let path = match rest.strip_prefix("//") {
                // file:///abs/path, file://localhost/abs/path
                Some(after) => match after.find('/') {
                    Some(0) => after,
                    Some(slash) if &after[..slash] == "localhost" => &after[slash..],
                    _ => {
                        return Err(format!(
                            "module {reference:?}: a file:// URL must name a local absolute path (file:///path/to/module.wasm)"
                        ));
                    }
                },
                None => rest,
            };
            let decoded = percent_decode_str(path)
                .decode_utf8()
                .map_err(|_| format!("module {reference:?}: the path is not valid UTF-8"))?;
            Ok(PathBuf::from(decoded.as_ref()))
        }
        Some("oci") => Err(format!(
            "module {reference:?}: OCI references are not fetched; pull the module \
             (e.g. `wkg oci pull` or `oras pull`) and name the local file"
        )),
        Some("bindle") => Err(format!(
            "module {reference:?}: Bindle references are not supported (Bindle is \
             discontinued); name the local .wasm file"
        )),
        Some(other) => Err(format!(
            "module {reference:?}: `{other}:` references are not fetched; download the \
             module and name the local file"
        )),
    }
}

/// The message for a module file that isn't there; it says when the name
/// would have worked from the working directory (where WAGI looked).
fn missing(reference: &str, resolved: &Path) -> String {
    let from_cwd = std::env::current_dir()
        .map(|cwd| cwd.join(reference))
        .ok()
        .filter(|path| !Path::new(reference).is_absolute() && path.is_file());
    match from_cwd {
        Some(path) => format!(
            "module {reference:?}: {} does not exist; paths are relative to this file's \
             folder (WAGI took them from the working directory, where {} is): write the \
             path relative to this file",
            resolved.display(),
            path.display()
        ),
        None => format!(
            "module {reference:?}: {} does not exist",
            resolved.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_file_urls_resolve_against_the_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mods")).unwrap();
        std::fs::write(dir.path().join("mods/a b.wasm"), b"").unwrap();
        let real = dir.path().canonicalize().unwrap().join("mods/a b.wasm");
        assert_eq!(resolve("mods/a b.wasm", dir.path()), Ok(real.clone()));
        assert_eq!(
            resolve("./mods/../mods/a b.wasm", dir.path()),
            Ok(real.clone())
        );
        let url = format!("file://{}", real.display()).replace(' ', "%20");
        assert_eq!(resolve(&url, Path::new("/elsewhere")), Ok(real.clone()));
        let url = format!("file://localhost{}", real.display());
        assert_eq!(resolve(&url, Path::new("/elsewhere")), Ok(real));
    }

    #[test]
    fn remote_and_missing_modules_are_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        for (reference, expected) in [
            ("oci:foo/bar:1.2.3", "OCI references are not fetched"),
            (
                "bindle:example.com/hello/1.0.0",
                "Bindle references are not supported",
            ),
            (
                "https://example.com/m.wasm",
                "`https:` references are not fetched",
            ),
            ("file://server/share/m.wasm", "local absolute path"),
            ("missing.wasm", "does not exist"),
        ] {
            let error = resolve(reference, dir.path()).unwrap_err();
            assert!(error.contains(expected), "{reference}: {error}");
        }
        std::fs::create_dir(dir.path().join("folder.wasm")).unwrap();
        assert!(
            resolve("folder.wasm", dir.path())
                .unwrap_err()
                .contains("not a file")
        );
    }
}
