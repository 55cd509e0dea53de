"""loopml.ui."""
