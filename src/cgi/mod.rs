//! The CGI/1.1 contract (RFC 3875): how a request becomes a program's
//! environment and argv, and how its output becomes a response.

pub mod request;
pub mod response;

/// How a module's stdout becomes the HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// As the classic wrapper: status 200, `text/plain`, stdout is the body.
    #[default]
    Simple,
    /// stdout starts with CGI header lines and an empty line.
    Cgi,
}
