"""loopml.storage."""
