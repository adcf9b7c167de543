"""cnnkit.genomics."""
