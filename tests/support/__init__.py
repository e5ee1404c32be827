"""Helpers shared by tests, conftests and benchmarks. Tests import these, never each other nor a
benchmark; benchmarks import these too."""
