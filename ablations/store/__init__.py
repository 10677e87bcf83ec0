"""Run-store primitives under everything that writes: atomic writes, locks, the run log, TensorBoard
events, per-sample predictions, file hashes. Imports nothing of the harness but ablations.errors."""
