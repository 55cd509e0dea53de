"""loopml.core."""
