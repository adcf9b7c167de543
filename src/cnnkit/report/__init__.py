"""cnnkit.report."""
