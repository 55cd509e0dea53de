"""loopml.demo."""
