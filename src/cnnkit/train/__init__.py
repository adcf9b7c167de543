"""cnnkit.train."""
