//! Limits on derived work: sizes a command computes from a file's *contents* (a CKA matrix of
//! layers x layers, a GMN's nodes x hidden features, probe activations of width x probe points)
//! can be far larger than the file. Each such size is checked against a named limit before
//! anything is allocated, and a refusal says what was asked for, the limit, and the flag that
//! raises it, so a user with a big machine is never stuck.

use crate::text::thousands;

/// One limit: what it bounds, its unit, its default and the command-line flag that sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// E.g. "CKA matrix entries".
    pub what: &'static str,
    /// E.g. "entries", "bytes".
    pub unit: &'static str,
    pub default: u64,
    /// E.g. "--max-cka-entries".
    pub flag: &'static str,
}

/// CKA matrix entries (layers of A x layers of B): the matrix, its HSIC terms and every output
/// (table, JSON, CSV) grow with it. 4M entries = 2,000 x 2,000 layers = 32 MB per f64 copy.
pub const CKA_ENTRIES: Limit = Limit {
    what: "CKA matrix (layers of A x layers of B)",
    unit: "entries",
    default: 4_000_000,
    flag: "--max-cka-entries",
};

/// Bytes a graph metanetwork allocates for one network's features: node states, edge messages
/// and probe activations (see [`gmn_feature_bytes`]).
pub const GMN_BYTES: Limit = Limit {
    what: "GMN features for one network (nodes x hidden, edges x hidden, probe activations)",
    unit: "bytes",
    default: 4 << 30,
    flag: "--max-gmn-bytes",
};

/// Floating-point work of one layer's spectrum (`compare::spectra::work`): `m^2 n` multiply-adds for the Gram
/// matrix plus `m^3` for its eigenvalues (`m <= n` the matrix's sides), plus the kernel positions'
/// slices for a conv's ESD. 2^34 (about 17 G) admits a 2048 x 2048 Linear; 4096 x 4096 needs 2^37.
/// Checked from the shape before any weight value is read (`compare::spectra::layer_spectrum`).
pub const SPECTRUM_WORK: Limit = Limit {
    what: "spectrum of one layer (Gram matrix and eigenvalues)",
    unit: "multiply-adds",
    default: 1 << 34,
    flag: "--max-spectrum-work",
};

/// Entries of the largest dense assignment (units x units of one group, f64): 16M = a group of
/// 4,096 units, 128 MB.
pub const ASSIGNMENT_ENTRIES: Limit = Limit {
    what: "dense assignment of the largest permutation group (units x units)",
    unit: "entries",
    default: 1 << 24,
    flag: "--max-assignment-entries",
};

/// Multiply-adds of one sweep over all groups (each group: units x elements of every tensor it
/// indexes; the products run through `gemm`). A 784-1024-1024-10 MLP needs 3 G, 0.7 s per sweep
/// on the 2-core dev machine; 2^36 (about 69 G) is some 15 s per sweep there.
pub const SWEEP_WORK: Limit = Limit {
    what: "one weight-matching sweep (units x tensor elements, summed over groups)",
    unit: "multiply-adds",
    default: 1 << 36,
    flag: "--max-align-work",
};

/// A refusal: a size over its limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} needs {needed} {unit}, over the limit of {max} {unit}; raise it with {flag} {needed_raw} \
     if this machine has the memory",
    needed = thousands(*.needed),
    max = thousands(*.max),
    needed_raw = .needed,
)]
pub struct OverLimit {
    pub what: &'static str,
    pub unit: &'static str,
    pub needed: u64,
    pub max: u64,
    pub flag: &'static str,
}

impl Limit {
    /// `Ok` when `needed` (`None`: overflowed u64) is within `max` (this limit's value as set).
    pub fn check(&self, needed: Option<u64>, max: u64) -> Result<(), OverLimit> {
        match needed {
            Some(n) if n <= max => Ok(()),
            n => {
                Err(OverLimit { what: self.what, unit: self.unit, needed: n.unwrap_or(u64::MAX), max, flag: self.flag })
            }
        }
    }
}

/// What a graph metanetwork is asked to process at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GmnShape {
    /// Nodes and edges of one network's graph (edges as the GMN sees them: with reversed copies
    /// when messages flow both ways).
    pub nodes: u64,
    pub edges: u64,
    pub hidden: u64,
    /// Probe points (0: weights-only GMN).
    pub probe_points: u64,
    /// Message-passing blocks.
    pub layers: u64,
    /// Networks processed together (a training batch; 1 for `infer`).
    pub networks: u64,
}

/// f32 bytes of the dominant tensors of a GMN forward pass, as a checked product: node states
/// (`nodes x hidden`) and edge messages (`edges x hidden`, twice: the message and its
/// aggregation input) for the encoder and every block, and for probe features the per-edge
/// messages of every probe point (`edges x probe points`, twice) and the node activations
/// (`nodes x probe points`, three times). An estimate of the same order as what burn allocates
/// (autodiff keeps several per-block tensors of these sizes alive), not an exact count.
pub fn gmn_feature_bytes(s: &GmnShape) -> Option<u64> {
    let per_block = s.nodes.checked_mul(s.hidden)?.checked_add(s.edges.checked_mul(s.hidden)?.checked_mul(2)?)?;
    let blocks = per_block.checked_mul(s.layers.checked_add(1)?)?;
    let probes = s.edges.checked_mul(2)?.checked_add(s.nodes.checked_mul(3)?)?.checked_mul(s.probe_points)?;
    blocks.checked_add(probes)?.checked_mul(4)?.checked_mul(s.networks.max(1))
}

/// Checks a GMN job against `max_bytes` ([`GMN_BYTES`]) before any tensor is built.
pub fn check_gmn(shape: &GmnShape, max_bytes: u64) -> Result<(), OverLimit> {
    GMN_BYTES.check(gmn_feature_bytes(shape), max_bytes)
}

/// The shape of a GMN run over `topology` (a GMN's settings and how many networks at once).
#[cfg(feature = "burn")]
pub fn gmn_shape(
    topology: &crate::models::Topology,
    hidden: usize,
    layers: usize,
    probe_points: usize,
    networks: usize,
) -> GmnShape {
    GmnShape {
        nodes: topology.num_nodes() as u64,
        edges: topology.num_edges() as u64,
        hidden: hidden as u64,
        probe_points: probe_points as u64,
        layers: layers as u64,
        networks: networks as u64,
    }
}

/// [`check_gmn`] for `gmn` run on one network, from its parameter graph (whose edges are
/// implicit, O(layers) to build), before the GMN's input topology (per-edge arrays, about 30
/// bytes per parameter) is materialised: a 64 MB model whose GMN job is refused costs nothing.
#[cfg(feature = "burn")]
pub fn check_gmn_on_graph(
    graph: &crate::graph::ParamGraph,
    gmn: &crate::models::GmnConfig,
    max_bytes: u64,
) -> Result<(), OverLimit> {
    let edges = (graph.num_edges() as u64).checked_mul(if gmn.undirected { 2 } else { 1 });
    let shape = GmnShape {
        nodes: graph.num_nodes() as u64,
        edges: edges.unwrap_or(u64::MAX),
        hidden: gmn.hidden as u64,
        probe_points: gmn.probe.as_ref().map_or(0, |p| p.points) as u64,
        layers: gmn.layers as u64,
        networks: 1,
    };
    check_gmn(&shape, max_bytes)
}

/// Training's largest step: a batch of the zoo's largest network (`train` checks it before the
/// first step).
#[cfg(feature = "burn")]
pub fn check_training(
    data: &crate::train::GraphSet,
    config: &crate::train::TrainConfig,
    max_bytes: u64,
) -> Result<(), OverLimit> {
    let largest = data.samples.iter().map(|s| &s.input.topology).max_by_key(|t| (t.num_edges(), t.num_nodes()));
    let Some(topology) = largest else { return Ok(()) };
    let probe = if data.inr.is_some() { config.probe_points } else { 0 };
    let batch = config.batch_size.min(data.samples.len());
    check_gmn(&gmn_shape(topology, config.hidden, config.layers, probe, batch), max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_the_size_the_limit_and_the_flag() {
        let err = CKA_ENTRIES.check(Some(100_000_000), CKA_ENTRIES.default).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("100,000,000 entries"), "{msg}");
        assert!(msg.contains("4,000,000 entries"), "{msg}");
        assert!(msg.contains("--max-cka-entries 100000000"), "{msg}");
        assert!(CKA_ENTRIES.check(Some(4_000_000), CKA_ENTRIES.default).is_ok());
        let overflow = GMN_BYTES.check(None, 10).unwrap_err();
        assert_eq!(overflow.needed, u64::MAX);
    }

    #[test]
    fn gmn_bytes_grow_with_each_factor_and_overflow_is_none() {
        let base = GmnShape { nodes: 100, edges: 1000, hidden: 64, probe_points: 196, layers: 4, networks: 1 };
        let b = gmn_feature_bytes(&base).unwrap();
        assert_eq!(gmn_feature_bytes(&GmnShape { networks: 64, ..base }), Some(64 * b));
        for bigger in [
            GmnShape { nodes: 200, ..base },
            GmnShape { edges: 2000, ..base },
            GmnShape { hidden: 128, ..base },
            GmnShape { probe_points: 400, ..base },
            GmnShape { layers: 8, ..base },
        ] {
            assert!(gmn_feature_bytes(&bigger).unwrap() > b, "{bigger:?}");
        }
        assert_eq!(gmn_feature_bytes(&GmnShape { edges: u64::MAX / 2, ..base }), None);
    }
}
