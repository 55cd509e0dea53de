"""loopml.jobs."""
