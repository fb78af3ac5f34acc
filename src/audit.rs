//! Audit records: JSON Lines, names and paths only.
