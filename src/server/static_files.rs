//! Static files from `--www`, and the page at `/` listing the modules when
//! there is no `index.html`. A request path is resolved here before any
//! file is opened: hidden names (`.env`, `.git/`), module files, anything
//! whose real path leaves `www` (a symlink out) and anything inside a
//! folder that is never public (the modules folder, the compile cache) are
//! all "not found". The file is then served by its real path.

use std::fmt::Write as _;
use std::io;
use std::path::{Component, Path, PathBuf};

use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

use super::bodies::{BoxError, RequestBody, ResponseBody, full_body};
use super::cgi_bin::CGI_PREFIX;
use super::error::HttpError;
use super::state::AppState;
use crate::modules::is_module_file;

/// Characters escaped in a path segment of a link.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The static files folder and the folders inside it that are never served.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    /// `www`, as its real path.
    root: PathBuf,
    /// Real paths of folders never served, even when inside `www`.
    private: Vec<PathBuf>,
}

impl StaticFiles {
    /// Serves `www`, except anything inside `private` (the modules folder,
    /// the compile cache). Fails if `www` can't be resolved.
    pub fn new(www: &Path, private: &[PathBuf]) -> io::Result<Self> {
        Ok(Self {
            root: www.canonicalize()?,
            private: private
                .iter()
                .filter_map(|dir| dir.canonicalize().ok())
                .collect(),
        })
    }

    /// The real path of the file `path` (a request path, percent-encoded)
    /// names, if it may be served.
    fn resolve(&self, path: &str) -> Result<Target, HttpError> {
        let mut relative = PathBuf::new();
        for segment in path.split('/').filter(|segment| !segment.is_empty()) {
            let decoded = percent_decode_str(segment)
                .decode_utf8()
                .map_err(|_| HttpError::NotFound)?;
            let plain = matches!(
                Path::new(&*decoded).components().next(),
                Some(Component::Normal(_))
            ) && Path::new(&*decoded).components().count() == 1;
            if !plain
                || decoded.starts_with('.')
                || decoded.contains(['\\', '\0'])
                || is_module_file(&decoded)
            {
                return Err(HttpError::NotFound);
            }
            relative.push(&*decoded);
        }
        let real = self
            .root
            .join(&relative)
            .canonicalize()
            .map_err(|_| HttpError::NotFound)?;
        self.check(&real)?;
        if !real.is_dir() {
            return Ok(Target::File(real));
        }
        if !path.ends_with('/') {
            return Ok(Target::Slash(format!("{path}/")));
        }
        let index = real
            .join("index.html")
            .canonicalize()
            .map_err(|_| HttpError::NotFound)?;
        self.check(&index)?;
        Ok(Target::File(index))
    }

    /// Whether the real path `real` may be served: inside `www`, in no
    /// private folder, a file or folder with no hidden or module name.
    fn check(&self, real: &Path) -> Result<(), HttpError> {
        let inside = real
            .strip_prefix(&self.root)
            .map_err(|_| HttpError::NotFound)?;
        let hidden = inside.components().any(|part| match part {
            Component::Normal(name) => {
                let name = name.to_string_lossy();
                name.starts_with('.') || is_module_file(&name)
            }
            _ => true,
        });
        if hidden || self.private.iter().any(|dir| real.starts_with(dir)) {
            return Err(HttpError::NotFound);
        }
        Ok(())
    }
}

/// What a static path leads to.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// This file, by its real path.
    File(PathBuf),
    /// A folder named without its trailing slash: redirect to this path.
    Slash(String),
}

/// Serves a request that names no module: a file from `www`, or the listing.
pub async fn serve(
    state: &AppState,
    request: Request<RequestBody>,
) -> Result<Response<ResponseBody>, HttpError> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Err(HttpError::MethodNotAllowed);
    }
    let path = request.uri().path().to_owned();
    let target = state.www.as_ref().map(|www| www.resolve(&path));
    match target {
        Some(Ok(Target::File(file))) => serve_file(&file, request).await,
        Some(Ok(Target::Slash(location))) => {
            let mut response = Response::new(full_body(""));
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            let location = HeaderValue::try_from(location).map_err(|_| HttpError::NotFound)?;
            response.headers_mut().insert(LOCATION, location);
            Ok(response)
        }
        _ if path == "/" => Ok(listing(state)),
        Some(Err(error)) => Err(error),
        None => Err(HttpError::NotFound),
    }
}

async fn serve_file(
    file: &Path,
    request: Request<RequestBody>,
) -> Result<Response<ResponseBody>, HttpError> {
    let response = ServeFile::new(file)
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    if response.status() == StatusCode::NOT_FOUND {
        return Err(HttpError::NotFound);
    }
    Ok(response.map(|body| {
        body.map_err(|error| -> BoxError { Box::new(error) })
            .boxed_unsync()
    }))
}

/// A small HTML page linking every module.
fn listing(state: &AppState) -> Response<ResponseBody> {
    let mut page = String::from(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>wasm-cgi</title>\n\
         <body style=\"font-family: system-ui; padding: 1rem\">\n<h1>wasm-cgi</h1>\n<ul>\n",
    );
    for name in state.modules.names() {
        let href = format!("{CGI_PREFIX}/{}", utf8_percent_encode(&name, SEGMENT));
        let _ = writeln!(
            page,
            "<li><a href=\"{href}\"><code>{}</code></a></li>",
            escape_html(&name)
        );
    }
    page.push_str("</ul>\n</body>\n");
    let mut response = Response::new(full_body(page));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A www folder with a page, a sub-folder, secrets, modules and links.
    fn www() -> (tempfile::TempDir, StaticFiles) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::create_dir_all(root.join("cgi-bin/modules")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("index.html"), "home").unwrap();
        std::fs::write(root.join("docs/index.html"), "docs").unwrap();
        std::fs::write(root.join("docs/page.txt"), "page").unwrap();
        std::fs::write(root.join(".env"), "SECRET=1").unwrap();
        std::fs::write(root.join(".git/config"), "[core]").unwrap();
        std::fs::write(root.join("cgi-bin/modules/hello.wasm"), "\0asm").unwrap();
        std::fs::write(root.join("cgi-bin/modules/notes.txt"), "private").unwrap();
        std::fs::write(root.join("stray.wasm"), "\0asm").unwrap();
        std::fs::write(outside.join("passwd"), "root:x").unwrap();
        symlink(outside.join("passwd"), root.join("passwd")).unwrap();
        symlink(&outside, root.join("out")).unwrap();
        symlink(root.join(".env"), root.join("env.txt")).unwrap();
        symlink(root.join("docs/page.txt"), root.join("alias.txt")).unwrap();
        let files = StaticFiles::new(&root, &[root.join("cgi-bin/modules")]).unwrap();
        (dir, files)
    }

    fn file(files: &StaticFiles, path: &str) -> Option<String> {
        match files.resolve(path) {
            Ok(Target::File(real)) => Some(std::fs::read_to_string(real).unwrap()),
            _ => None,
        }
    }

    #[test]
    fn ordinary_files_and_folder_indexes_are_served() {
        let (_dir, files) = www();
        assert_eq!(file(&files, "/").as_deref(), Some("home"));
        assert_eq!(file(&files, "/docs/").as_deref(), Some("docs"));
        assert_eq!(file(&files, "/docs/page.txt").as_deref(), Some("page"));
        assert_eq!(file(&files, "/docs/%70age.txt").as_deref(), Some("page"));
        assert_eq!(
            file(&files, "/alias.txt").as_deref(),
            Some("page"),
            "a link inside www"
        );
        assert_eq!(
            files.resolve("/docs"),
            Ok(Target::Slash("/docs/".to_owned()))
        );
    }

    #[test]
    fn hidden_files_modules_and_links_out_are_never_served() {
        // Regression: ServeDir served dotfiles, followed symlinks out of
        // www, and served the modules folder inside www in the classic layout.
        let (_dir, files) = www();
        for path in [
            "/.env",
            "/%2eenv",
            "/.git/config",
            "/.git/",
            "/env.txt",
            "/passwd",
            "/out/passwd",
            "/cgi-bin/modules/hello.wasm",
            "/cgi-bin/modules/notes.txt",
            "/cgi-bin/modules/",
            "/stray.wasm",
            "/docs/../.env",
            "/docs/%2e%2e/.env",
            "/docs%2f..%2f.env",
            "/nothing-here",
        ] {
            assert_eq!(
                files.resolve(path),
                Err(HttpError::NotFound),
                "{path} was served"
            );
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]
            #[test]
            fn a_static_path_never_resolves_outside_www_or_to_a_hidden_file(
                segments in proptest::collection::vec(
                    prop_oneof![
                        Just("..".to_owned()), Just(".".to_owned()), Just("%2e%2e".to_owned()),
                        Just("%2f".to_owned()), Just("docs".to_owned()), Just("out".to_owned()),
                        Just(".env".to_owned()), Just("%2eenv".to_owned()), Just("passwd".to_owned()),
                        Just("cgi-bin".to_owned()), Just("modules".to_owned()), Just("hello.wasm".to_owned()),
                        Just("page.txt".to_owned()), Just("index.html".to_owned()), Just("".to_owned()),
                    ],
                    0..6,
                )
            ) {
                let (_dir, files) = www();
                let path = format!("/{}", segments.join("/"));
                if let Ok(Target::File(real)) = files.resolve(&path) {
                    prop_assert!(real.starts_with(&files.root), "{path} -> {}", real.display());
                    let inside = real.strip_prefix(&files.root).unwrap();
                    prop_assert!(
                        !inside.to_string_lossy().split('/').any(|part| part.starts_with('.') || part.ends_with(".wasm")),
                        "{path} -> {}", real.display()
                    );
                    prop_assert!(!real.starts_with(files.root.join("cgi-bin/modules")), "{path}");
                }
            }
        }
    }
}
