//! Which of the three formats `--config` was given, told from what the file
//! holds (no flag): wasm-cgi's own TOML, a WAGI `modules.toml` (top-level
//! `[[module]]` tables), or a Spin manifest (`spin_manifest_version`, or
//! version 1's `spin_version`).

/// The format of a config file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// wasm-cgi's own: `[[route]]`, `[limits]`...
    #[default]
    Native,
    /// WAGI's `modules.toml`.
    Wagi,
    /// A Spin application manifest, of this version (1 or 2).
    Spin(u8),
}

impl Format {
    /// The format of `text`; a file that is not TOML at all is taken for
    /// wasm-cgi's own, whose reader then says what is wrong with it.
    pub fn of(text: &str) -> Format {
        let Ok(table) = text.parse::<toml::Table>() else {
            return Format::Native;
        };
        let version = table
            .get("spin_manifest_version")
            .or_else(|| table.get("spin_version"));
        if let Some(version) = version {
            let number = match version {
                toml::Value::Integer(n) => u8::try_from(*n).unwrap_or(0),
                toml::Value::String(text) => text.parse().unwrap_or(0),
                _ => 0,
            };
            return Format::Spin(number);
        }
        let wagi = matches!(table.get("module"), Some(toml::Value::Array(_)))
            && !table.contains_key("route");
        if wagi { Format::Wagi } else { Format::Native }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Format::Native => f.write_str("wasm-cgi config"),
            Format::Wagi => f.write_str("WAGI modules.toml"),
            Format::Spin(version) => write!(f, "Spin manifest (version {version})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_told_from_the_contents() {
        assert_eq!(Format::of("[[route]]\npath = \"/\"\n"), Format::Native);
        assert_eq!(Format::of(""), Format::Native);
        assert_eq!(Format::of("not toml ["), Format::Native);
        assert_eq!(
            Format::of("[[module]]\nroute = \"/\"\nmodule = \"a.wasm\"\n"),
            Format::Wagi
        );
        assert_eq!(
            Format::of("spin_manifest_version = 2\n[application]\nname = \"a\"\n"),
            Format::Spin(2)
        );
        assert_eq!(Format::of("spin_version = \"1\"\n"), Format::Spin(1));
        assert_eq!(
            Format::of("spin_manifest_version = \"1\"\n"),
            Format::Spin(1)
        );
    }
}
