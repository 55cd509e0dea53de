"""loopml.sim."""
