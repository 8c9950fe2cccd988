"""Data: the embedded sample, dataset access, organisation into splits, and validation."""
