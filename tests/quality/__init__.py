"""Quality tests: detection floors on the real datasets (slow: they train models)."""
