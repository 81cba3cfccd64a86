//! The append-only, hash-chained audit log (JSON lines).
