"""Real servers on loopback that stand in for remote services in tests and benchmarks."""
