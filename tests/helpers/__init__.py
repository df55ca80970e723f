"""What the tests share: API helpers, database queries, keys, a shop wired to the simulator, real
processes. Test modules import from here (or take fixtures); never from one another."""
