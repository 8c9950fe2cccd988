"""`make demo`: the main job on the embedded sample (filled in by the foundation work)."""
