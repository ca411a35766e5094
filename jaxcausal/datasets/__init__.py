"""Data generators and shipped data sets."""
