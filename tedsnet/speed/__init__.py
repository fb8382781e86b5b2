"""Speed: optional execution modes, their equivalence check and the throughput benchmark, apart from the method."""
