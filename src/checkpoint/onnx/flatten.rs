//! The decoded graph tree -> one flat list of weight tensors and one flat op list.
//!
//! Owns: which values are weights, subgraph names, name resolution across scopes and `Identity`
//! aliases. The rules (see also README, "ONNX"):
//!
//! - **Weights** are the initializers of every graph, plus `Constant` nodes whose value is a
//!   floating-point tensor of more than one element (exporters such as paddle2onnx and older
//!   torch versions store every weight that way). Integer and boolean constants (shapes, axes,
//!   indices, masks: what feeds `Reshape`, `Slice`, `Gather`) and single floats (epsilons,
//!   exponents, scales) are operator arguments, not parameters: their nodes stay in the op list,
//!   but they are not tensors of the model. One exception: a single float that a `Conv`,
//!   `ConvTranspose` or `Gemm` of the same graph reads as its bias (a one-output head's bias) is
//!   a weight. A `Constant`'s tensor is named after its output.
//! - **Subgraphs** (`If`'s `then_branch`/`else_branch`, `Loop`/`Scan`'s `body`, any graph
//!   attribute) are inlined: their nodes come right before the node that owns them, and every
//!   value they define is named `<node>/<attribute>/<name>`, where `<node>` is the owner's name
//!   (or `<op_type>_<index in its graph>` when it has none or a very long one), nested as deep as
//!   the subgraphs are. Names a subgraph reads from enclosing graphs keep the enclosing name; a
//!   name no enclosing graph defines is an error. The owner then reads, after its own inputs, its
//!   subgraphs' outputs (so an `If`'s output can be traced to the branch that computes it).
//! - **Identity of a weight** (how exporters share one weight between two ops, or hand an outer
//!   weight to a branch) is resolved: every reader of the `Identity`'s output reads the weight
//!   itself. The `Identity` node stays in the op list.
//!
//! Built names are charged to a budget proportional to the file, so deep nesting cannot make the
//! names grow out of proportion to the input.

use std::collections::{HashMap, HashSet};

use super::model::{Graph, TensorProto};
use crate::checkpoint::OpNode;
use crate::text::shown;

/// A weight tensor still to be converted, with what it is (for error messages).
pub struct Weight {
    pub proto: TensorProto,
    pub origin: &'static str,
}

/// Every weight and every op of a model, subgraphs included.
pub struct Flat {
    pub weights: Vec<Weight>,
    pub ops: Vec<OpNode>,
}

/// Node names longer than this are replaced by `<op_type>_<index>` in subgraph paths.
const MAX_PATH_COMPONENT: usize = 128;

/// Flattens the main graph of a model file of `file_len` bytes.
pub fn flatten(graph: Graph, file_len: usize) -> Result<Flat, String> {
    let mut f = Flattener {
        weights: Vec::new(),
        ops: Vec::new(),
        listed: HashSet::new(),
        aliases: HashMap::new(),
        name_budget: file_len.saturating_mul(16).saturating_add(1 << 20),
    };
    f.graph(graph, "", None)?;
    Ok(Flat { weights: f.weights, ops: f.ops })
}

struct Flattener {
    weights: Vec<Weight>,
    ops: Vec<OpNode>,
    /// Full names of the weights listed so far.
    listed: HashSet<String>,
    /// `Identity` output (full name) -> the weight it passes on (full name).
    aliases: HashMap<String, String>,
    /// Bytes of built names still allowed.
    name_budget: usize,
}

/// The names one graph defines: local name -> full name.
struct Scope<'p> {
    parent: Option<&'p Scope<'p>>,
    names: HashMap<String, String>,
}

impl Scope<'_> {
    fn resolve(&self, name: &str) -> Option<&str> {
        let mut scope = Some(self);
        while let Some(s) = scope {
            if let Some(full) = s.names.get(name) {
                return Some(full);
            }
            scope = s.parent;
        }
        None
    }
}

impl Flattener {
    /// `prefix + name`, charged to the name budget.
    fn full_name(&mut self, prefix: &str, name: &str) -> Result<String, String> {
        let len = prefix.len().saturating_add(name.len());
        if prefix.is_empty() {
            return Ok(name.to_string());
        }
        self.name_budget = self.name_budget.checked_sub(len).ok_or(
            "the names of values inside subgraphs grow out of proportion to the file (subgraphs nest too deep \
             for their size)",
        )?;
        Ok(format!("{prefix}{name}"))
    }

    /// Flattens `graph`, whose values are named `prefix + name`; returns its outputs' full names.
    fn graph(&mut self, graph: Graph, prefix: &str, parent: Option<&Scope>) -> Result<Vec<String>, String> {
        let mut scope = Scope { parent, names: HashMap::new() };
        let defined = graph
            .inputs
            .iter()
            .chain(graph.initializers.iter().map(|t| &t.name))
            .chain(graph.nodes.iter().flat_map(|n| &n.op.outputs));
        for name in defined {
            if !name.is_empty() && !scope.names.contains_key(name) {
                let full = self.full_name(prefix, name)?;
                scope.names.insert(name.clone(), full);
            }
        }
        for mut proto in graph.initializers {
            proto.name = scope.resolve(&proto.name).map(str::to_string).unwrap_or_default();
            self.listed.insert(proto.name.clone());
            self.weights.push(Weight { proto, origin: "initializer" });
        }
        let where_ = |prefix: &str| match prefix.strip_suffix('/') {
            Some(path) => format!("subgraph '{}'", shown(path)),
            None => "the main graph".to_string(),
        };
        // A one-element float Constant is an argument (an epsilon, an exponent), except where a
        // conv or Gemm reads it as its bias: then it is the bias of a one-output layer.
        let biases: HashSet<String> = graph
            .nodes
            .iter()
            .filter(|n| matches!(n.op.op_type.as_str(), "Conv" | "ConvTranspose" | "Gemm"))
            .filter_map(|n| n.op.inputs.get(2).cloned())
            .collect();
        for (index, node) in graph.nodes.into_iter().enumerate() {
            let mut op = node.op;
            let is_bias = op.outputs.len() == 1 && op.outputs.first().is_some_and(|o| biases.contains(o));
            for input in &mut op.inputs {
                *input = self.reads(&scope, input, prefix).ok_or_else(|| {
                    format!(
                        "node '{}' ({}) in {} reads '{}', which neither its graph nor an enclosing one defines",
                        shown(&op.name),
                        shown(&op.op_type),
                        where_(prefix),
                        shown(input)
                    )
                })?;
            }
            for output in &mut op.outputs {
                if let Some(full) = scope.names.get(output.as_str()) {
                    *output = full.clone();
                }
            }
            if op.op_type == "Constant"
                && let (Some(mut proto), [output]) = (node.value, op.outputs.as_slice())
                && (is_weight(&proto) || (is_bias && is_float(&proto)))
            {
                proto.name = output.clone();
                self.listed.insert(proto.name.clone());
                self.weights.push(Weight { proto, origin: "Constant" });
            }
            if op.op_type == "Identity"
                && let ([source], [output]) = (op.inputs.as_slice(), op.outputs.as_slice())
                && self.listed.contains(source)
            {
                self.aliases.insert(output.clone(), source.clone());
            }
            if !node.subgraphs.is_empty() {
                let component = path_component(&op, index);
                for (attribute, subgraph) in node.subgraphs {
                    let sub_prefix = self.full_name(prefix, &format!("{component}/{attribute}/"))?;
                    let outputs = self.graph(subgraph, &sub_prefix, Some(&scope))?;
                    op.inputs.extend(outputs);
                }
            }
            if !prefix.is_empty() {
                let own = if op.name.is_empty() { format!("{}_{index}", op.op_type) } else { op.name.clone() };
                op.name = self.full_name(prefix, &own)?;
            }
            self.ops.push(op);
        }
        graph
            .outputs
            .iter()
            .map(|name| {
                self.reads(&scope, name, prefix).ok_or_else(|| {
                    format!(
                        "{} has output '{}', which neither it nor an enclosing graph defines",
                        where_(prefix),
                        shown(name)
                    )
                })
            })
            .collect()
    }

    /// The full name a reference `name` in a graph with `prefix` stands for (`Identity` aliases
    /// resolved); `None` when a subgraph reads a name nothing defines. The main graph may read
    /// undeclared names (inputs some exporters do not list): they keep their name.
    fn reads(&self, scope: &Scope, name: &str, prefix: &str) -> Option<String> {
        if name.is_empty() {
            return Some(String::new()); // an omitted optional input
        }
        let full = match scope.resolve(name) {
            Some(full) => full,
            None if prefix.is_empty() => name,
            None => return None,
        };
        Some(self.aliases.get(full).unwrap_or(&full.to_string()).clone())
    }
}

/// How a node owning subgraphs appears in their paths.
fn path_component(op: &OpNode, index: usize) -> String {
    if !op.name.is_empty() && op.name.len() <= MAX_PATH_COMPONENT {
        return op.name.clone();
    }
    let op_type = if op.op_type.is_empty() || op.op_type.len() > MAX_PATH_COMPONENT { "node" } else { &op.op_type };
    format!("{op_type}_{index}")
}

/// A floating-point tensor.
fn is_float(t: &TensorProto) -> bool {
    const FLOAT_TYPES: [i32; 4] = [1, 10, 11, 16]; // FLOAT, FLOAT16, DOUBLE, BFLOAT16
    FLOAT_TYPES.contains(&t.data_type)
}

/// A `Constant` value counts as a weight when it is a floating-point tensor of more than one
/// element (see the module docs). A shape that overflows or has a negative dimension counts too,
/// so that the tensor reader reports it instead of it vanishing silently.
fn is_weight(t: &TensorProto) -> bool {
    if !is_float(t) {
        return false;
    }
    let elements = t.dims.iter().try_fold(1u64, |acc, &d| u64::try_from(d).ok().and_then(|d| acc.checked_mul(d)));
    elements.is_none_or(|n| n > 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::onnx::model::Node;

    fn node(name: &str, op_type: &str, inputs: &[&str], outputs: &[&str]) -> Node {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        let op = OpNode {
            name: name.into(),
            op_type: op_type.into(),
            inputs: strings(inputs),
            outputs: strings(outputs),
            ..OpNode::default()
        };
        Node { op, value: None, subgraphs: Vec::new() }
    }

    fn tensor(name: &str, dims: &[i64], data_type: i32) -> TensorProto {
        TensorProto { name: name.into(), dims: dims.to_vec(), data_type, ..TensorProto::default() }
    }

    fn constant(output: &str, dims: &[i64], data_type: i32) -> Node {
        let mut n = node("", "Constant", &[], &[output]);
        n.value = Some(tensor("", dims, data_type));
        n
    }

    fn names(flat: &Flat) -> Vec<&str> {
        flat.weights.iter().map(|w| w.proto.name.as_str()).collect()
    }

    #[test]
    fn weight_rule_keeps_float_tensors_and_drops_shapes_and_scalars() {
        let graph = Graph {
            nodes: vec![
                constant("w", &[4, 3], 1),
                constant("half", &[8], 10),
                constant("shape", &[2], 7),
                constant("eps", &[], 1),
                constant("one", &[1], 1),
                constant("empty", &[0], 1),
                constant("huge", &[1 << 40], 1),
                node("mm", "MatMul", &["x", "w"], &["y"]),
            ],
            ..Graph::default()
        };
        let flat = flatten(graph, 100).expect("valid");
        assert_eq!(names(&flat), ["w", "half", "huge"]);
        assert_eq!(flat.ops.len(), 8, "every node stays in the op list");
    }

    #[test]
    fn subgraph_values_get_paths_and_outer_names_and_aliases_resolve() {
        let then_branch = Graph {
            initializers: vec![tensor("w", &[2, 2], 1)],
            nodes: vec![
                node("", "MatMul", &["x", "w"], &["y"]),
                node("", "Add", &["y", "shared"], &["z"]), // `shared`: an outer Identity alias
            ],
            outputs: vec!["z".into()],
            ..Graph::default()
        };
        let mut if_node = node("", "If", &["cond"], &["out"]);
        if_node.subgraphs.push(("then_branch".into(), then_branch));
        let graph = Graph {
            inputs: vec!["x".into(), "cond".into()],
            initializers: vec![tensor("b", &[2], 1)],
            nodes: vec![node("id", "Identity", &["b"], &["shared"]), if_node],
            ..Graph::default()
        };
        let flat = flatten(graph, 100).expect("valid");
        assert_eq!(names(&flat), ["b", "If_1/then_branch/w"]);
        let ops: Vec<(&str, Vec<&str>)> =
            flat.ops.iter().map(|o| (o.name.as_str(), o.inputs.iter().map(|s| s.as_str()).collect())).collect();
        assert_eq!(
            ops,
            [
                ("id", vec!["b"]),
                ("If_1/then_branch/MatMul_0", vec!["x", "If_1/then_branch/w"]),
                ("If_1/then_branch/Add_1", vec!["If_1/then_branch/y", "b"]),
                ("", vec!["cond", "If_1/then_branch/z"]), // main-graph nodes keep their names
            ]
        );
    }

    #[test]
    fn a_subgraph_reading_an_undefined_name_is_an_error() {
        let body = Graph { nodes: vec![node("m", "MatMul", &["x", "nowhere"], &["y"])], ..Graph::default() };
        let mut loop_node = node("loop", "Loop", &[], &[]);
        loop_node.subgraphs.push(("body".into(), body));
        let graph = Graph { inputs: vec!["x".into()], nodes: vec![loop_node], ..Graph::default() };
        let err = flatten(graph, 100).err().expect("missing name");
        assert!(err.contains("'nowhere'") && err.contains("loop/body"), "{err}");
        // The main graph may read undeclared inputs.
        let graph = Graph { nodes: vec![node("m", "MatMul", &["x", "w"], &["y"])], ..Graph::default() };
        assert!(flatten(graph, 100).is_ok());
    }

    #[test]
    fn long_names_are_charged_to_the_budget() {
        let long = "n".repeat(100);
        let mut graph = Graph { nodes: vec![node("", "Relu", &[], &[long.as_str()])], ..Graph::default() };
        for _ in 0..10 {
            let mut owner = node(&long, "If", &[], &[]);
            owner.subgraphs.push(("then_branch".into(), graph));
            graph = Graph { nodes: vec![owner], ..Graph::default() };
        }
        assert!(flatten(graph, 0).is_ok(), "the floor covers small models");
        let mut graph = Graph::default();
        for _ in 0..40 {
            let mut owner = node(&long, "If", &[], &[]);
            owner.subgraphs.push(("then_branch".into(), graph));
            let mut nodes: Vec<Node> = (0..200).map(|i| node("", "Relu", &[], &[format!("v{i}").as_str()])).collect();
            nodes.push(owner);
            graph = Graph { nodes, ..Graph::default() };
        }
        let err = flatten(graph, 0).err().expect("budget");
        assert!(err.contains("out of proportion"), "{err}");
    }
}
