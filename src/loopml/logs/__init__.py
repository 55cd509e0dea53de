"""loopml.logs."""
