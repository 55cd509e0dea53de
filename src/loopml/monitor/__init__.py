"""loopml.monitor."""
