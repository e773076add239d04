//! STUB: replaced by the CKA engine.
