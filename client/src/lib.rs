//! The echo-client load generator (built in its own issue).
