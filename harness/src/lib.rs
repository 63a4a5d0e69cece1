//! The echo-harness matrix runner (built in its own issue).
