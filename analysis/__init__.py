"""Tables and plots of the Hiera ablations, regenerated from runs/ alone: `python -m analysis`."""
