"""Metrics for causal estimates."""
