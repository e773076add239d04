//! STUB: replaced by the parameter graph.
