"""`loopml demo`: the whole loop on the simulated world, end to end, with a report."""
