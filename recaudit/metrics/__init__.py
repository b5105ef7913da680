"""Pure metric functions (no model, no I/O): list similarity, ranking accuracy, group unfairness, concentration, statistics."""
