//! What a file is: a core module (WASI preview 1) or a component (WASI
//! preview 2), told from its header with no flag; and for components, which
//! world they target: a `wasi:cli/command` (run as a CGI program) or a
//! `wasi:http/proxy` (served as a native HTTP handler).

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;
use wasmtime::{Engine, Precompiled};

/// The two kinds of WebAssembly binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A core module (`\0asm` version 1).
    Module,
    /// A component (`\0asm` version `0d 00`, layer 1).
    Component,
}

/// The magic number every binary starts with.
const MAGIC: &[u8; 4] = b"\0asm";
/// Version and layer of a component.
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

impl Kind {
    /// The kind of a `.wasm`. Anything without a component's header is
    /// taken for a module, so the module parser names what is wrong with
    /// bytes that are neither.
    pub fn of_wasm(bytes: &[u8]) -> Kind {
        if bytes.len() >= 8 && bytes[..4] == *MAGIC && bytes[4..8] == COMPONENT_VERSION {
            Kind::Component
        } else {
            Kind::Module
        }
    }

    /// The kind of a precompiled `.cwasm`, or `None` when the bytes are not
    /// a Wasmtime artifact at all.
    pub fn of_precompiled(bytes: &[u8]) -> Option<Kind> {
        match Engine::detect_precompiled(bytes)? {
            Precompiled::Module => Some(Kind::Module),
            Precompiled::Component => Some(Kind::Component),
        }
    }
}

/// The world a component targets, read from what it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// Exports `wasi:cli/run@0.2.x`: a program with `main`, run through the
    /// CGI contract like a preview 1 module.
    Command,
    /// Exports `wasi:http/incoming-handler@0.2.x`: a native HTTP handler.
    Proxy,
}

/// The instance a command exports, without its version.
pub const CLI_RUN: &str = "wasi:cli/run@0.2.";
/// The instance a wasi:http handler exports, without its version.
pub const HTTP_HANDLER: &str = "wasi:http/incoming-handler@0.2.";

impl World {
    /// The world `component` targets, or `None` when it exports neither
    /// `wasi:cli/run` nor `wasi:http/incoming-handler` (0.2.x). A component
    /// that exports both is a handler: that is how it asks to be served.
    pub fn of(engine: &Engine, component: &Component) -> Option<World> {
        let mut world = None;
        for (name, export) in component.component_type().exports(engine) {
            if !matches!(export.ty, ComponentItem::ComponentInstance(_)) {
                continue;
            }
            if name.starts_with(HTTP_HANDLER) {
                return Some(World::Proxy);
            }
            if name.starts_with(CLI_RUN) {
                world = Some(World::Command);
            }
        }
        world
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            World::Command => "wasi:cli/command component",
            World::Proxy => "wasi:http/proxy component",
        })
    }
}

/// The names a component imports and exports at its top level (not those of
/// the components and modules inside it), read without compiling it:
/// `wasi:http/incoming-handler@0.2.0`, `fermyon:spin/key-value@2.0.0`...
pub fn component_interfaces(wasm: &[u8]) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    use wasmparser::{Parser, Payload};
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 1 => {
                for import in section {
                    imports.push(import?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    exports.push(export?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_modules_from_components() {
        let module = wat::parse_str("(module)").unwrap();
        let component = wat::parse_str("(component)").unwrap();
        assert_eq!(Kind::of_wasm(&module), Kind::Module);
        assert_eq!(Kind::of_wasm(&component), Kind::Component);
        assert_eq!(Kind::of_wasm(b"garbage"), Kind::Module);
        assert_eq!(Kind::of_precompiled(&module), None);
    }

    #[test]
    fn precompiled_artifacts_say_what_they_hold() {
        let engine = Engine::default();
        let module = engine
            .precompile_module(&wat::parse_str("(module)").unwrap())
            .unwrap();
        let component = engine
            .precompile_component(&wat::parse_str("(component)").unwrap())
            .unwrap();
        assert_eq!(Kind::of_precompiled(&module), Some(Kind::Module));
        assert_eq!(Kind::of_precompiled(&component), Some(Kind::Component));
    }

    #[test]
    fn a_components_own_imports_and_exports_are_listed() {
        let component = wat::parse_str(
            r#"(component
                 (import "fermyon:spin/key-value@2.0.0" (instance))
                 (component $inner (import "inner:only/x" (instance)))
                 (instance $i)
                 (export "wasi:http/incoming-handler@0.2.0" (instance $i)))"#,
        )
        .unwrap();
        let (imports, exports) = component_interfaces(&component).unwrap();
        assert_eq!(imports, ["fermyon:spin/key-value@2.0.0"]);
        assert_eq!(exports, ["wasi:http/incoming-handler@0.2.0"]);
    }

    #[test]
    fn a_component_exporting_neither_world_has_none() {
        let engine = Engine::default();
        let component = Component::new(&engine, wat::parse_str("(component)").unwrap()).unwrap();
        assert_eq!(World::of(&engine, &component), None);
    }
}
