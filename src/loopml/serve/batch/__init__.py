"""loopml.serve.batch."""
