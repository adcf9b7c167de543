"""cnnkit.cli."""
