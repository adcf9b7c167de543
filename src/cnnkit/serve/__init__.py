"""cnnkit.serve."""
