"""Job handlers: each runs one kind of job, in the transactions it opens, and settles its job."""
