//! STUB: replaced by architecture recovery.
