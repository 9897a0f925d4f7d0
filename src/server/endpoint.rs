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
}

impl Endpoint<'_> {
    /// The limits its requests run under: the route's, else the server's.
    pub fn limits<'s>(&'s self, state: &'s AppState) -> &'s Limits {
        self.route.map_or(&state.limits, |route| &route.limits)
    }

    /// What every run of this endpoint gets: argv `[NAME, route args...]`,
    /// the route's environment, directories, entry point and allowed hosts,
    /// and the instance limits of `limits`.
    pub fn invocation(&self, limits: &Limits) -> Invocation {
        let args = vec![self.program.name().to_string()];
        let Some(route) = self.route else {
            return Invocation {
                args,
                limits: limits.run(),
                ..Invocation::default()
            };
        };
        let config = &route.config;
        Invocation {
            args: args
                .into_iter()
                .chain(config.args.iter().cloned())
                .collect(),
            env: config.env.clone(),
            dirs: config.dirs.clone(),
            entrypoint: config.entrypoint.clone(),
            allowed_hosts: config.allowed_hosts.clone(),
            limits: limits.run(),
            ..Invocation::default()
        }
    }

    /// An instance slot (the route's own, if it has them), waiting in the
    /// queue if need be; 503 when none comes, counted as overloaded.
    pub async fn acquire_slot(&self, state: &AppState) -> Result<OwnedSemaphorePermit, HttpError> {
        let admission = self
            .route
            .and_then(|route| route.admission.as_deref())
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
