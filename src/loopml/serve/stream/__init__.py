"""loopml.serve.stream."""
