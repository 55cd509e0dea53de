"""loopml.cli."""
