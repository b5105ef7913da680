"""Pure metric functions (no model, no I/O): ranking similarity, group unfairness, concentration, statistics."""
