"""loopml.features."""
