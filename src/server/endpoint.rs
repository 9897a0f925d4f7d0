//! What both executors (CGI runs and wasi:http handlers) share: the
//! endpoint a request was routed to, its limits and invocation, the
//! instance slot it waits for, and what a request leads to.

use std::sync::Arc;

use http::{Request, Response};
use tokio::sync::OwnedSemaphorePermit;

use super::bodies::{RequestBody, ResponseBody};
use super::error::HttpError;
use super::state::AppState;
use crate::cgi::Mode;
use crate::limits::Limits;
use crate::routes::Route;
use crate::runtime::{Invocation, Program};
use crate::scripts::Script;

/// A program chosen to answer a request, and how.
pub struct Endpoint<'a> {
    /// The program.
    pub program: Arc<Program>,
    /// `SCRIPT_NAME`.
    pub script_name: String,
    /// `PATH_INFO`, decoded.
    pub path_info: String,
    /// How a command's output is read.
    pub mode: Mode,
    /// The configured route it was reached by: its args, env, directories,
    /// entry point and limits. `None`: the server's defaults.
    pub route: Option<&'a Route>,
    /// The script the program (its interpreter) runs, if it runs one.
    pub script: Option<Script<'a>>,
    /// The route's parameters: names as written, values decoded.
    pub params: Vec<(String, String)>,
    /// The rest of the path after `SCRIPT_NAME`, still percent-encoded.
    pub raw_path_info: String,
}

impl<'a> Endpoint<'a> {
    /// The endpoint for a route (which names its module), or a script
    /// (whose interpreter is the module), or both: the program is looked
    /// up now, so a reloaded one is picked up; 404 if it is gone. Its mode
    /// is the route's, else the interpreter's, else the module's own, else
    /// the server's.
    pub fn resolve(
        state: &AppState,
        route: Option<&'a Route>,
        script: Option<Script<'a>>,
        script_name: String,
        path_info: String,
    ) -> Result<Self, HttpError> {
        let interpreter = script.as_ref().map(|script| &script.interpreter.config);
        let module = match (route, interpreter) {
            (Some(route), _) => &route.config.module,
            (None, Some(interpreter)) => &interpreter.module,
            (None, None) => return Err(HttpError::NotFound),
        };
        let entry = state.modules.get(module).ok_or(HttpError::NotFound)?;
        let mode = route
            .and_then(|route| route.config.mode)
            .or(interpreter.and_then(|interpreter| interpreter.mode))
            .or(entry.mode)
            .unwrap_or(state.mode);
        Ok(Self {
            program: entry.program.clone(),
            script_name,
            path_info,
            mode,
            route,
            script,
            params: Vec::new(),
            raw_path_info: String::new(),
        })
    }

    /// The endpoint with what its route's pattern matched: the parameters
    /// (decoded) and the rest of the path as sent.
    pub fn matched(mut self, params: Vec<(String, String)>, raw_path_info: &str) -> Self {
        self.params = params;
        self.raw_path_info = raw_path_info.to_owned();
        self
    }

    /// The endpoint for the module `name` of the folder, with the
    /// server's defaults; 404 if there is none.
    pub fn module(
        state: &AppState,
        name: &str,
        script_name: String,
        path_info: String,
    ) -> Result<Self, HttpError> {
        let entry = state.modules.get(name).ok_or(HttpError::NotFound)?;
        Ok(Self {
            program: entry.program.clone(),
            script_name,
            path_info,
            mode: entry.mode.unwrap_or(state.mode),
            route: None,
            script: None,
            params: Vec::new(),
            raw_path_info: String::new(),
        })
    }

    /// The limits its requests run under: the route's, else the
    /// interpreter's for a script, else the server's.
    pub fn limits<'s>(&'s self, state: &'s AppState) -> &'s Limits {
        match (self.route, &self.script) {
            (Some(route), _) => &route.limits,
            (None, Some(script)) => &script.interpreter.limits,
            (None, None) => &state.limits,
        }
    }

    /// What names the endpoint in logs: the program, or for a script
    /// `hello.py (python.wasm)`.
    pub fn label(&self) -> Arc<str> {
        match &self.script {
            Some(script) => format!("{} ({})", script.name, self.program.name()).into(),
            None => self.program.name().clone(),
        }
    }

    /// Whether a query's search words become argv (RFC 3875 4.4): unless
    /// the route or the interpreter says `query_args = false`.
    pub fn query_args(&self) -> bool {
        self.route.is_none_or(|route| route.config.query_args)
            && self
                .script
                .as_ref()
                .is_none_or(|script| script.interpreter.config.query_args)
    }

    /// What every run of this endpoint gets: argv `[NAME, interpreter args
    /// (the script), route args...]`, the interpreter's then the route's
    /// environment and directories (a script's folder read-only first),
    /// then the server's `--env` (which wins over both) and the route's
    /// parameters as `ROUTE_PARAM_NAME`, the route's entry point and
    /// allowed hosts, and the instance limits of `limits`.
    pub fn invocation(&self, state: &AppState, limits: &Limits) -> Invocation {
        let mut invocation = Invocation {
            args: vec![self.program.name().to_string()],
            limits: limits.run(),
            ..Invocation::default()
        };
        if let Some(script) = &self.script {
            let interpreter = &script.interpreter.config;
            invocation
                .args
                .extend(interpreter.args_for(&script.guest_path()));
            invocation.env.extend(interpreter.env.iter().cloned());
            invocation.dirs.push(script.folder_grant());
            invocation.dirs.extend(interpreter.dirs.iter().cloned());
        }
        if let Some(route) = self.route {
            let config = &route.config;
            invocation.args.extend(config.args.iter().cloned());
            invocation
                .env
                .retain(|(name, _)| !config.env.iter().any(|(own, _)| own == name));
            invocation.env.extend(config.env.iter().cloned());
            invocation.dirs.extend(config.dirs.iter().cloned());
            invocation.entrypoint = config.entrypoint.clone();
            invocation.allowed_hosts = config.allowed_hosts.clone();
        }
        let params = self.params.iter().map(|(name, value)| {
            (
                format!("ROUTE_PARAM_{}", name.to_ascii_uppercase()),
                value.clone(),
            )
        });
        for (name, value) in state.guest_env.iter().cloned().chain(params) {
            invocation.env.retain(|(own, _)| *own != name);
            invocation.env.push((name, value));
        }
        invocation
    }

    /// The argv a route from a WAGI or Spin file gives, from its template;
    /// `None` for every other endpoint.
    pub fn compat_argv(&self, query: &str) -> Option<Vec<String>> {
        let compat = self.route?.config.compat.as_ref()?;
        Some(compat.argv.expand(&self.script_name, query))
    }

    /// The variables WAGI or Spin add for a route from their files (see
    /// [`compat_vars`](super::compat_vars)), made from the request's `meta`.
    pub fn compat_variables(&self, meta: &[(String, String)]) -> Vec<(String, String)> {
        let Some(route) = self.route else {
            return Vec::new();
        };
        let Some(compat) = &route.config.compat else {
            return Vec::new();
        };
        let facts = super::compat_vars::RouteFacts {
            matched_route: route.config.path.to_string(),
            component_route: route.config.path.base(),
            raw_path_info: &self.raw_path_info,
            params: &self.params,
        };
        super::compat_vars::variables(compat.flavor, meta, &facts)
    }

    /// The meta-variables a script gets besides RFC 3875's: its guest path,
    /// its folder's, and the `REDIRECT_STATUS` php-cgi insists on.
    pub fn script_variables(&self) -> Vec<(String, String)> {
        let Some(script) = &self.script else {
            return Vec::new();
        };
        vec![
            ("SCRIPT_FILENAME".to_owned(), script.guest_path()),
            (
                "DOCUMENT_ROOT".to_owned(),
                crate::scripts::GUEST_DIR.to_owned(),
            ),
            ("REDIRECT_STATUS".to_owned(), "200".to_owned()),
        ]
    }

    /// An instance slot (the route's own, if it has them), waiting in the
    /// queue if need be; 503 when none comes, counted as overloaded.
    pub async fn acquire_slot(&self, state: &AppState) -> Result<OwnedSemaphorePermit, HttpError> {
        let admission = match (self.route, &self.script) {
            (Some(route), _) => route.admission.as_deref(),
            (None, Some(script)) => script.interpreter.admission.as_deref(),
            (None, None) => None,
        }
        .unwrap_or(&state.admission);
        admission.acquire().await.map_err(|_| {
            state.metrics.overloaded();
            HttpError::Overloaded
        })
    }
}

/// What a request leads to.
pub enum Next {
    /// Send this response.
    Response(Response<ResponseBody>),
    /// Serve this request instead (an internal redirect).
    Redirect(Request<RequestBody>),
}
