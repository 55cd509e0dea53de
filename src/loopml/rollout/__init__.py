"""loopml.rollout."""
