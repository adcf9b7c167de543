"""cnnkit.explain."""
