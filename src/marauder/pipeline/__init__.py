"""`marauder pipeline`: every stage in the guide's order, skipping what is already up to date."""
