//! Finding the state dict inside whatever a checkpoint pickled, and naming its tensors.
//!
//! A `.pt` file may hold a bare state dict, or a training checkpoint that nests one under
//! `state_dict` / `model` / `ema` ... next to epochs, optimizer state and configs. [`discover`]
//! picks the state dict, flattens nested dicts/lists of tensors with `.`-joined names in file
//! order, and strips a wrapper prefix (`module.` from DataParallel) that every name shares.
//!
//! Shared references make a small pickle a huge tree (one memoized 1 MB key at 95 levels would
//! name a tensor with 95 MB), so the walk counts its visits and charges every name it builds to
//! the pickle's memory budget ([`super::budget`]).

use super::budget::{self, Meter};
use super::pickle::{Dict, Object, Pickle, Value};
use super::tensor::{is_tensor, key_string};

/// Keys under which training scripts commonly store the model weights, most specific first.
const PREFERRED_KEYS: &[&str] = &[
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "net",
    "network",
    "ema",
    "model_ema",
    "ema_state_dict",
    "params",
    "weights",
];

/// Prefixes added by wrappers (`nn.DataParallel`, `torch.compile`) to every parameter name.
const WRAPPER_PREFIXES: &[&str] = &["module.", "_orig_mod."];

const MAX_DEPTH: usize = 100;

/// Estimated bytes each tensor costs the store besides its name (its `TensorInfo`, shape and
/// strides, index entry).
const TENSOR_BYTES: usize = 256;

/// Named tensor values of the checkpoint's state dict, in file order.
pub fn discover(pickle: &Pickle) -> Result<Vec<(String, Value)>, String> {
    let mut walker = Walker {
        pickle,
        visits_left: pickle.objects.len().saturating_mul(16).saturating_add(10_000),
        names: Meter::new(budget::memory_limit(pickle.stream_len)),
    };
    let chosen = walker.choose(&pickle.root, 0)?;
    let mut named = Vec::new();
    walker.flatten(&chosen, "", &mut named, 0)?;
    for prefix in WRAPPER_PREFIXES {
        if !named.is_empty() && named.iter().all(|(name, _)| name.starts_with(prefix)) {
            for (name, _) in &mut named {
                name.drain(..prefix.len());
            }
        }
    }
    Ok(named)
}

struct Walker<'a> {
    pickle: &'a Pickle,
    /// Shared references can make a small pickle an exponentially large tree; cap the walk
    /// (every container visited and every child looked at counts).
    visits_left: usize,
    /// Estimated bytes of tensor names (and the prefixes they are built from) still allowed.
    names: Meter,
}

impl<'a> Walker<'a> {
    fn visit(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("containers nest more than {MAX_DEPTH} levels deep (or contain themselves)"));
        }
        self.spend_visits(1)
    }

    fn spend_visits(&mut self, n: usize) -> Result<(), String> {
        self.visits_left = self.visits_left.checked_sub(n).ok_or("pickle shares containers too heavily to walk")?;
        Ok(())
    }

    /// Charges `bytes` of tensor names.
    fn spend_names(&mut self, bytes: usize) -> Result<(), String> {
        if self.names.spend(bytes) {
            return Ok(());
        }
        Err(format!(
            "refusing to load: the tensor names would take more than the pickle's memory limit of {} \
             (shared keys nested many levels deep?)",
            budget::describe_memory(self.pickle.stream_len)
        ))
    }

    /// The container to take tensors from: the root if it is a state dict, else the value under a
    /// well-known key, else the first state-dict-like dict in file order, else the root.
    fn choose(&mut self, value: &Value, depth: usize) -> Result<Value, String> {
        self.visit(depth)?;
        if let Some(dict) = self.pickle.dict(value) {
            if self.is_state_dict(dict, depth)? {
                return Ok(value.clone());
            }
            for key in PREFERRED_KEYS {
                if let Some(child) = dict.get_str(key)
                    && self.contains_tensor(child, depth + 1)?
                {
                    return self.choose(child, depth + 1);
                }
            }
        }
        Ok(self.first_state_dict(value, depth)?.unwrap_or_else(|| value.clone()))
    }

    /// A dict that looks like a state dict: at least half of its values are tensors, or every value
    /// is or holds tensors (a state dict nested by module: `{"encoder": {...}, "head": {...}}`).
    fn is_state_dict(&mut self, dict: &Dict, depth: usize) -> Result<bool, String> {
        self.spend_visits(dict.entries.len())?;
        let tensors = dict.entries.iter().filter(|(_, v)| is_tensor(self.pickle, v)).count();
        if tensors > 0 && tensors * 2 >= dict.entries.len() {
            return Ok(true);
        }
        if dict.entries.is_empty() {
            return Ok(false);
        }
        for (_, value) in &dict.entries {
            if !self.contains_tensor(value, depth + 1)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The values held by a container (borrowed: a shared container is not copied per visit).
    fn children(&mut self, value: &Value) -> Result<Vec<&'a Value>, String> {
        let pickle = self.pickle;
        let children: Vec<&'a Value> = match pickle.object(value) {
            Some(Object::Dict(d)) => d.entries.iter().map(|(_, v)| v).collect(),
            Some(Object::List(items) | Object::Tuple(items)) => items.iter().collect(),
            _ => Vec::new(),
        };
        self.spend_visits(children.len())?;
        Ok(children)
    }

    fn contains_tensor(&mut self, value: &Value, depth: usize) -> Result<bool, String> {
        self.visit(depth)?;
        if is_tensor(self.pickle, value) {
            return Ok(true);
        }
        for child in self.children(value)? {
            if self.contains_tensor(child, depth + 1)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn first_state_dict(&mut self, value: &Value, depth: usize) -> Result<Option<Value>, String> {
        self.visit(depth)?;
        if let Some(dict) = self.pickle.dict(value)
            && self.is_state_dict(dict, depth)?
        {
            return Ok(Some(value.clone()));
        }
        for child in self.children(value)? {
            if let Some(found) = self.first_state_dict(child, depth + 1)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Appends every tensor under `value`, named by the `.`-joined dict keys / list indices.
    fn flatten(
        &mut self,
        value: &Value,
        prefix: &str,
        out: &mut Vec<(String, Value)>,
        depth: usize,
    ) -> Result<(), String> {
        self.visit(depth)?;
        if is_tensor(self.pickle, value) {
            self.spend_names(prefix.len() + TENSOR_BYTES)?;
            out.push((prefix.to_string(), value.clone()));
            return Ok(());
        }
        let pickle = self.pickle;
        let named: Vec<(Option<&'a Value>, &'a Value)> = match pickle.object(value) {
            Some(Object::Dict(d)) => d.entries.iter().map(|(k, v)| (Some(k), v)).collect(),
            Some(Object::List(items) | Object::Tuple(items)) => items.iter().map(|v| (None, v)).collect(),
            _ => return Ok(()),
        };
        self.spend_visits(named.len())?;
        for (i, (key, child)) in named.into_iter().enumerate() {
            let key_len = match key {
                Some(Value::Str(s)) => s.len(),
                Some(_) => 20,
                None => 20,
            };
            // The name is charged before it is built: prefix, separator, key.
            self.spend_names(prefix.len() + 1 + key_len)?;
            let key = match key {
                Some(k) => match key_string(k) {
                    Some(k) => k,
                    None => continue,
                },
                None => i.to_string(),
            };
            let name = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
            self.flatten(child, &name, out, depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::globals::{Global, Rebuild};
    use super::super::pickle::unpickle;
    use super::*;

    /// A tiny pickle writer for building test structures (protocol 2 opcodes).
    enum P {
        Tensor,
        Int(i32),
        Str(&'static str),
        Dict(Vec<(&'static str, P)>),
        List(Vec<P>),
    }

    fn emit(p: &P, out: &mut Vec<u8>) {
        match p {
            // Any recorded rebuild call counts as a tensor for discovery.
            P::Tensor => out.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n)R"),
            P::Int(i) => {
                out.push(b'J');
                out.extend_from_slice(&i.to_le_bytes());
            }
            P::Str(s) => {
                out.push(b'X');
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            P::Dict(entries) => {
                out.extend_from_slice(b"}(");
                for (k, v) in entries {
                    emit(&P::Str(k), out);
                    emit(v, out);
                }
                out.push(b'u');
            }
            P::List(items) => {
                out.extend_from_slice(b"](");
                items.iter().for_each(|i| emit(i, out));
                out.push(b'e');
            }
        }
    }

    fn names(p: P) -> Result<Vec<String>, String> {
        let mut bytes = b"\x80\x02".to_vec();
        emit(&p, &mut bytes);
        bytes.push(b'.');
        let (pickle, _) = unpickle(&bytes).map_err(|e| e.to_string())?;
        assert!(matches!(
            pickle.objects.iter().find(|o| matches!(o, Object::Call { .. })),
            None | Some(Object::Call { func: Global::Rebuild(Rebuild::TensorV2), .. })
        ));
        Ok(discover(&pickle)?.into_iter().map(|(n, _)| n).collect())
    }

    #[test]
    fn a_bare_state_dict_keeps_file_order() {
        let sd = P::Dict(vec![("z.weight", P::Tensor), ("a.bias", P::Tensor), ("m.weight", P::Tensor)]);
        assert_eq!(names(sd).unwrap(), ["z.weight", "a.bias", "m.weight"]);
    }

    #[test]
    fn a_training_checkpoint_yields_its_state_dict_only() {
        let ckpt = P::Dict(vec![
            ("epoch", P::Int(3)),
            ("optimizer", P::Dict(vec![("state", P::Dict(vec![("exp_avg", P::Tensor)]))])),
            ("state_dict", P::Dict(vec![("w", P::Tensor), ("b", P::Tensor)])),
            ("config", P::Dict(vec![("lr", P::Str("0.1"))])),
        ]);
        assert_eq!(names(ckpt).unwrap(), ["w", "b"]);
    }

    #[test]
    fn without_a_known_key_the_first_state_dict_wins() {
        let ckpt = P::Dict(vec![
            ("step", P::Int(1)),
            ("weights_v2", P::Dict(vec![("w", P::Tensor), ("note", P::Str("x"))])),
            ("other", P::Dict(vec![("v", P::Tensor)])),
        ]);
        assert_eq!(names(ckpt).unwrap(), ["w"]);
    }

    #[test]
    fn nested_modules_are_flattened_and_wrapper_prefixes_stripped() {
        let sd = P::Dict(vec![
            ("module.enc", P::Dict(vec![("w", P::Tensor)])),
            ("module.heads", P::List(vec![P::Tensor, P::Tensor])),
            ("module.b", P::Tensor),
        ]);
        assert_eq!(names(sd).unwrap(), ["enc.w", "heads.0", "heads.1", "b"]);
    }

    #[test]
    fn a_dict_of_tensor_dicts_inside_a_checkpoint() {
        let ckpt = P::Dict(vec![
            ("step", P::Int(1)),
            ("nets", P::Dict(vec![("g", P::Dict(vec![("w", P::Tensor)])), ("d", P::Dict(vec![("w", P::Tensor)]))])),
        ]);
        assert_eq!(names(ckpt).unwrap(), ["g.w", "d.w"]);
    }

    #[test]
    fn no_tensors_gives_an_empty_list() {
        assert!(names(P::Dict(vec![("epoch", P::Int(1))])).unwrap().is_empty());
    }

    #[test]
    fn cycles_and_deep_nesting_are_errors_not_overflows() {
        // d = {}; d['self'] = d; {'a': d}
        let cyclic = b"\x80\x02}q\x00X\x04\x00\x00\x00selfh\x00s.";
        let (pickle, _) = unpickle(cyclic).unwrap();
        assert!(discover(&pickle).unwrap_err().contains("levels deep"));

        let mut deep = b"\x80\x02".to_vec();
        deep.extend(std::iter::repeat_n(b"]".as_slice(), 5000).flatten());
        deep.extend(std::iter::repeat_n(b"a".as_slice(), 4999).flatten());
        deep.push(b'.');
        let (pickle, _) = unpickle(&deep).unwrap();
        assert!(discover(&pickle).unwrap_err().contains("levels deep"));
    }

    #[test]
    fn shared_references_cannot_explode_the_walk() {
        // l0 = []; l(i+1) = [l(i), l(i)] for 60 levels: 2^60 paths through 61 objects.
        let mut bytes = b"\x80\x02]q\x00".to_vec();
        for i in 0..60u8 {
            bytes.extend_from_slice(&[b'h', i, b'h', i, 0x86, b'q', i + 1]);
        }
        bytes.push(b'.');
        let (pickle, _) = unpickle(&bytes).unwrap();
        assert!(discover(&pickle).unwrap_err().contains("too heavily"));
    }
}
