//! Before GMN node features colour a drawn parameter graph, prove that they belong to it.
//!
//! The GMN input (`models::Topology`) and the graph view are both built from one file by
//! `graph::build`; the topology lists nodes as `ParamGraph::node_features` does (node blocks in
//! order) and the view's instance buffer walks the same blocks. Node `i` of one is node `i` of
//! the other only if the blocks tile the ids `0..N` in order and both sides list the same node
//! features. [`node_order`] checks the first, [`check_alignment`] the second. An undirected
//! topology only adds reversed edges, so its nodes, and this check, are unchanged.
//!
//! Whether the GMN can read the model at all (its kinds of parameters and weight layers) is
//! `crate::inference::check_fits`.

use crate::graph::ParamGraph;

/// `[layer_index, neuron_order, node_type]` of every node in draw order, which is also id order:
/// an error if the node blocks do not tile `0..num_nodes` in order.
pub fn node_order(graph: &ParamGraph) -> Result<Vec<[i64; 3]>, String> {
    let mut next = 0usize;
    for (i, b) in graph.node_blocks().iter().enumerate() {
        if b.start != next {
            return Err(format!("node block {i} ({}) starts at node {} instead of {next}", b.label, b.start));
        }
        next = b.start.checked_add(b.len).ok_or_else(|| format!("node block {i} ({}) overflows", b.label))?;
    }
    if next != graph.num_nodes() {
        return Err(format!("the node blocks cover {next} nodes, the graph has {}", graph.num_nodes()));
    }
    Ok(graph.node_features())
}

/// Checks that the GMN's input nodes are the drawn graph's nodes, one for one and in order.
pub fn check_alignment(gmn_nodes: &[[i64; 3]], drawn_nodes: &[[i64; 3]]) -> Result<(), String> {
    if gmn_nodes.len() != drawn_nodes.len() {
        return Err(format!(
            "the GMN input has {} nodes but the drawn graph has {}: they were not built from the same model",
            gmn_nodes.len(),
            drawn_nodes.len()
        ));
    }
    let describe = |f: &[i64; 3]| format!("layer {}, order {}, type {}", f[0], f[1], f[2]);
    match gmn_nodes.iter().zip(drawn_nodes).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!(
            "node {i} differs between the GMN input ({}) and the drawn graph ({}): refusing to colour the wrong nodes",
            describe(&gmn_nodes[i]),
            describe(&drawn_nodes[i])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn siren() -> ParamGraph {
        let store = crate::demo::open("siren").unwrap();
        crate::graph::build(&crate::arch::recover(&store), &store).unwrap()
    }

    #[test]
    fn the_demo_siren_is_drawn_in_id_order_and_aligns_with_itself() {
        let graph = siren();
        let order = node_order(&graph).unwrap();
        assert_eq!(order.len(), graph.num_nodes());
        // 2 inputs + 32 + 32 + 1 neurons, plus bias nodes: every node id appears once, in order.
        assert!(order.len() >= 67);
        check_alignment(&order, &order).unwrap();
        // Inputs come first and are ordered (neuron_order = position).
        assert_eq!((order[0][1], order[1][1]), (0, 1));
    }

    #[test]
    fn mismatches_are_refused_with_the_reason() {
        let order = node_order(&siren()).unwrap();
        let shorter = &order[..order.len() - 1];
        let e = check_alignment(shorter, &order).unwrap_err();
        let n = order.len();
        assert!(e.contains(&format!("has {} nodes", n - 1)) && e.contains(&format!("drawn graph has {n}")), "{e}");
        let mut swapped = order.clone();
        let last = swapped.len() - 1;
        swapped.swap(0, last);
        let e = check_alignment(&swapped, &order).unwrap_err();
        assert!(e.starts_with("node 0 differs"), "{e}");
    }
}
