"""cnnkit.models."""
