"""loopml.train."""
