"""What to run: presets, tables and searches (YAML, here), the resolved config and its validation,
a run's identity and folder, and --status. Runs each selected run through ablations.train."""
