"""Benchmarks with a known right answer: synthetic scenes and the scores against them."""
