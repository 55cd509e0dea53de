"""loopml.serve.online."""
