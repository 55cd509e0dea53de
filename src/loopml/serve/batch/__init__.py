"""Pattern 1: batch predictions written to a database for a web application to read."""
