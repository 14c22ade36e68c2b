"""Deploy use-case: immutable builds moved across dev/test/prod edge nodes, with gates and an audit trail."""
