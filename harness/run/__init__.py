"""One `harness run`: the pipeline, its options, the run directory, and matrices of kernels."""
