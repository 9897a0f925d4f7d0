//! `/cgi-bin/wasm-run.cgi/NAME.wasm[/extra/path]`: which module a request
//! names, and the `SCRIPT_NAME` / `PATH_INFO` split. Names are checked as
//! plain file names and looked up in memory; the filesystem is never touched.

use percent_encoding::percent_decode_str;

use super::error::HttpError;

/// The path every folder module is served under, as in the classic image.
pub const CGI_PREFIX: &str = "/cgi-bin/wasm-run.cgi";

/// A request path under [`CGI_PREFIX`], split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiTarget {
    /// The module's file name, decoded, e.g. `hello.wasm`.
    pub module: String,
    /// `/cgi-bin/wasm-run.cgi/hello.wasm` as requested.
    pub script_name: String,
    /// The rest of the path, URL-decoded; empty when there is none.
    pub path_info: String,
}

/// Splits `path` (still percent-encoded) if it is under [`CGI_PREFIX`];
/// `None` if it is not. A path under it that names no module, or a name that
/// is not a plain file name, is a 400.
pub fn parse(path: &str) -> Option<Result<CgiTarget, HttpError>> {
    let rest = path.strip_prefix(CGI_PREFIX)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(split(CGI_PREFIX, rest))
}

/// The path scripts are served under: `/cgi-bin/NAME.EXT`.
pub const SCRIPTS_PREFIX: &str = "/cgi-bin";

/// Splits `path` if it is under [`SCRIPTS_PREFIX`] (and not under
/// [`CGI_PREFIX`]): the script's name, `SCRIPT_NAME` and `PATH_INFO`, with
/// the same rules as module names.
pub fn parse_script(path: &str) -> Option<Result<CgiTarget, HttpError>> {
    if parse(path).is_some() {
        return None;
    }
    let rest = path.strip_prefix(SCRIPTS_PREFIX)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(split(SCRIPTS_PREFIX, rest))
}

fn split(prefix: &str, rest: &str) -> Result<CgiTarget, HttpError> {
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let (raw_name, raw_extra) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    if raw_name.is_empty() {
        return Err(HttpError::BadRequest(if raw_extra.is_empty() {
            "no module named; try /cgi-bin/wasm-run.cgi/hello.wasm"
        } else {
            "the module name must be a plain file name"
        }));
    }
    let module =
        decode(raw_name).ok_or(HttpError::BadRequest("the module name is not valid UTF-8"))?;
    if !is_plain_file_name(&module) {
        return Err(HttpError::BadRequest(
            "the module name must be a plain file name",
        ));
    }
    Ok(CgiTarget {
        script_name: format!("{prefix}/{raw_name}"),
        module,
        path_info: path_info(raw_extra)?,
    })
}

/// `PATH_INFO` from the still-encoded rest of a path: URL-decoded, and
/// refused (400) if it is not UTF-8 or holds a NUL.
pub fn path_info(raw: &str) -> Result<String, HttpError> {
    let decoded = decode(raw).ok_or(HttpError::BadRequest("the path is not valid UTF-8"))?;
    if decoded.contains('\0') {
        return Err(HttpError::BadRequest("the path holds a NUL character"));
    }
    Ok(decoded)
}

fn decode(raw: &str) -> Option<String> {
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// A name that can only mean a file directly inside the modules folder.
fn is_plain_file_name(name: &str) -> bool {
    name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> CgiTarget {
        parse(path).expect("under the prefix").expect("valid")
    }

    #[test]
    fn name_and_extra_path_are_split_and_decoded() {
        let t = target("/cgi-bin/wasm-run.cgi/hello.wasm/a%20b/c");
        assert_eq!(t.module, "hello.wasm");
        assert_eq!(t.script_name, "/cgi-bin/wasm-run.cgi/hello.wasm");
        assert_eq!(t.path_info, "/a b/c");
        assert_eq!(target("/cgi-bin/wasm-run.cgi/hello.wasm").path_info, "");
    }

    #[test]
    fn other_paths_are_not_cgi_targets() {
        assert!(parse("/index.html").is_none());
        assert!(parse("/cgi-bin/wasm-run.cgix/hello.wasm").is_none());
    }

    #[test]
    fn names_that_are_not_plain_file_names_are_bad_requests() {
        for path in [
            "/cgi-bin/wasm-run.cgi",
            "/cgi-bin/wasm-run.cgi/",
            "/cgi-bin/wasm-run.cgi/..",
            "/cgi-bin/wasm-run.cgi/%2e%2e",
            "/cgi-bin/wasm-run.cgi/%2E%2E/etc/passwd",
            "/cgi-bin/wasm-run.cgi/..%2fetc%2fpasswd",
            "/cgi-bin/wasm-run.cgi/a%5cb.wasm",
            "/cgi-bin/wasm-run.cgi/hello.wasm%00.txt",
            "/cgi-bin/wasm-run.cgi//etc/passwd",
            "/cgi-bin/wasm-run.cgi/%ff.wasm",
        ] {
            let result = parse(path).expect("under the prefix");
            assert!(
                matches!(result, Err(HttpError::BadRequest(_))),
                "{path} gave {result:?}"
            );
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn a_module_name_never_leaves_the_modules_folder(
                rest in proptest::collection::vec(
                    prop_oneof![
                        Just("/".to_owned()), Just("..".to_owned()), Just(".".to_owned()),
                        Just("%2e".to_owned()), Just("%2f".to_owned()), Just("%5c".to_owned()),
                        Just("%00".to_owned()), Just("\\".to_owned()), Just("%".to_owned()),
                        "[a-z]{1,4}", Just(".wasm".to_owned()), "%[0-9a-fA-F]{2}",
                    ],
                    0..8,
                )
            ) {
                let path = format!("{CGI_PREFIX}/{}", rest.concat());
                if let Some(Ok(target)) = parse(&path) {
                    let name = &target.module;
                    prop_assert!(!name.is_empty());
                    prop_assert!(!name.contains(['/', '\\', '\0']), "{name:?} from {path}");
                    prop_assert!(name != "." && name != "..", "{name:?} from {path}");
                    prop_assert!(!target.path_info.contains('\0'), "{path}");
                }
            }
        }
    }
}
