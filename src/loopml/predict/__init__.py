"""loopml.predict."""
