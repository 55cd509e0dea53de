"""loopml.ranking."""
