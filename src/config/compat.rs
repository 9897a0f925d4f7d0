//! What a route read from a WAGI `modules.toml` or a Spin manifest keeps of
//! its origin: the argv template (`${SCRIPT_NAME} ${ARGS}`), which of the
//! extra variables those servers set (`X_MATCHED_ROUTE`, `X_FULL_URL`...)
//! its module expects, and whether the module is asked for its own
//! sub-routes (WAGI's `_routes` export).

/// Whose conventions a route follows, for the variables beyond RFC 3875.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// WAGI's: `X_MATCHED_ROUTE`, `X_FULL_URL`, `X_RAW_PATH_INFO`.
    Wagi,
    /// Spin's WAGI executor's: `X_MATCHED_ROUTE`, `X_FULL_URL`,
    /// `X_COMPONENT_ROUTE`, `X_RAW_COMPONENT_ROUTE`, `X_BASE_PATH`,
    /// `X_CLIENT_ADDR`, `X_PATH_MATCH_NAME` per route parameter.
    Spin,
}

/// The default argv of WAGI and of Spin's WAGI executor.
pub const DEFAULT_ARGV: &str = "${SCRIPT_NAME} ${ARGS}";

/// An argv template: words separated by spaces, where `${SCRIPT_NAME}` is
/// the request's `SCRIPT_NAME` and `${ARGS}` the query's `name=value`
/// pairs (split on `&`, as sent: not decoded), one argument each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgvTemplate(String);

impl ArgvTemplate {
    /// The template `text`; an error if it makes no `argv[0]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.split(' ').all(str::is_empty) {
            return Err("argv must hold at least argv[0], e.g. \"${SCRIPT_NAME} ${ARGS}\"".into());
        }
        Ok(Self(text.to_owned()))
    }

    /// argv for a request with this `SCRIPT_NAME` and query string. Empty
    /// words are dropped (a request without a query adds no argument).
    pub fn expand(&self, script_name: &str, query: &str) -> Vec<String> {
        self.0
            .replace("${SCRIPT_NAME}", script_name)
            .replace("${ARGS}", &query.replace('&', " "))
            .split(' ')
            .filter(|word| !word.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Default for ArgvTemplate {
    fn default() -> Self {
        Self(DEFAULT_ARGV.to_owned())
    }
}

/// One sub-route among those a module printed from `_routes`: they are
/// ranked among themselves WAGI's way (the last printed line that matches
/// wins, and any of them over the module's own route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteGroup {
    /// Which `[[module]]` the sub-routes came from (its route's index).
    pub id: usize,
    /// 0 for the module's own route, then 1, 2... in the order printed.
    pub rank: usize,
}

/// How a route from a WAGI or Spin file runs its module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCompat {
    /// Whose variables it gets.
    pub flavor: Flavor,
    /// Its argv, instead of `[NAME, args..., search words...]`.
    pub argv: ArgvTemplate,
    /// Whether the module is asked for sub-routes (`_routes`) at load.
    pub subroutes: bool,
    /// Its place among its module's sub-routes, once they are known.
    pub group: Option<RouteGroup>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_argv_is_script_name_then_the_query_pairs() {
        let argv = ArgvTemplate::default();
        assert_eq!(
            argv.expand("/env", "greet=matt&foo=bar"),
            ["/env", "greet=matt", "foo=bar"]
        );
        assert_eq!(argv.expand("/env", ""), ["/env"]);
        assert_eq!(argv.expand("/env", "a%20b&&c"), ["/env", "a%20b", "c"]);
        let ruby =
            ArgvTemplate::parse("${SCRIPT_NAME} -v /lib/hello.rb ${SCRIPT_NAME} ${ARGS}").unwrap();
        assert_eq!(
            ruby.expand("/", "x=1"),
            ["/", "-v", "/lib/hello.rb", "/", "x=1"]
        );
        assert!(ArgvTemplate::parse("  ").is_err());
    }
}
