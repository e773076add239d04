//! Tensor names -> modules: `layer1.0.conv1.weight` is leaf `weight` of module `layer1.0.conv1`.
//! Keras-style names (`sequential/dense/kernel:0`) split on `/` and lose the `:0` suffix.

use std::collections::HashMap;

use crate::checkpoint::TensorStore;

/// A module path and its leaves (leaf name, index of the tensor in the store), in file order.
#[derive(Debug)]
pub(super) struct Module {
    pub path: String,
    pub leaves: Vec<(String, usize)>,
}

impl Module {
    /// Index of the tensor stored under `leaf`, if any.
    pub fn leaf(&self, leaf: &str) -> Option<usize> {
        self.leaves.iter().find(|(l, _)| l == leaf).map(|&(_, i)| i)
    }
}

/// Modules in order of their first tensor, with a lookup by path.
#[derive(Debug, Default)]
pub(super) struct Modules {
    pub list: Vec<Module>,
    by_path: HashMap<String, usize>,
}

impl Modules {
    pub fn get(&self, path: &str) -> Option<&Module> {
        self.by_path.get(path).and_then(|&i| self.list.get(i))
    }
}

/// Splits a tensor name into (module path, leaf). A name without a separator is a leaf of the
/// root module `""`.
pub(super) fn split_name(name: &str) -> (&str, &str) {
    let name = name.strip_suffix(":0").unwrap_or(name);
    match name.rfind(['.', '/']) {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => ("", name),
    }
}

/// The parent of a module path (`a.b.c` -> `a.b`; `a` -> ``).
pub(super) fn parent(path: &str) -> &str {
    path.rfind(['.', '/']).map_or("", |i| &path[..i])
}

/// The last component of a module path (`a.b.c` -> `c`).
pub(super) fn last(path: &str) -> &str {
    path.rfind(['.', '/']).map_or(path, |i| &path[i + 1..])
}

/// Joins a module path and a child name.
pub(super) fn join(path: &str, child: &str) -> String {
    if path.is_empty() { child.to_string() } else { format!("{path}.{child}") }
}

/// True when `path` is `prefix` itself or lies under it.
pub(super) fn is_under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), Some(b'.' | b'/')))
}

/// Groups the store's tensors by module, in file order.
pub(super) fn group(store: &TensorStore) -> Modules {
    let mut modules = Modules::default();
    for (i, t) in store.tensors().iter().enumerate() {
        let (path, leaf) = split_name(&t.name);
        let slot = match modules.by_path.get(path) {
            Some(&slot) => slot,
            None => {
                modules.list.push(Module { path: path.to_string(), leaves: Vec::new() });
                let slot = modules.list.len() - 1;
                modules.by_path.insert(path.to_string(), slot);
                slot
            }
        };
        if let Some(m) = modules.list.get_mut(slot) {
            m.leaves.push((leaf.to_string(), i));
        }
    }
    modules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_module_and_leaf() {
        assert_eq!(split_name("layer1.0.conv1.weight"), ("layer1.0.conv1", "weight"));
        assert_eq!(split_name("sequential/dense/kernel:0"), ("sequential/dense", "kernel"));
        assert_eq!(split_name("cls_token"), ("", "cls_token"));
        assert_eq!(parent("a.b.c"), "a.b");
        assert_eq!(last("a.b.c"), "c");
        assert!(is_under("layer1.0.downsample.0", "layer1.0"));
        assert!(!is_under("layer1.01.conv1", "layer1.0"));
        assert!(is_under("anything", ""));
    }
}
