"""What the processor does with its data, independent of HTTP and of jobs."""
