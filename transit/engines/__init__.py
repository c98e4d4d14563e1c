"""Logical engines (transit, later kv and system), the mount table, and their framework."""
