"""How one run trains: its phases (phases.py), the epoch loop (loop.py) and step engine (engine.py),
optimizer, checkpoints, signals (interrupt.py), torch.distributed, the batch split and the memory
plan. Knows nothing of tables or presets: it gets one resolved config and a folder."""
