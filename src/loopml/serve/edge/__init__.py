"""loopml.serve.edge."""
