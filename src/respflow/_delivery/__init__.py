"""Getting events to where they are wanted: the pipeline with its per-sink buffers, the
built-in sinks, sinks found by entry point, and the hub that readers follow."""
