#!/usr/bin/env python
"""Recreate the Hiera paper's ablations: python ablate.py --step f  (--help for everything)."""

import sys

from ablations.cli import main

if __name__ == "__main__":
    sys.exit(main())
