#!/usr/bin/env python
"""Recreate the Hiera paper's ablations: python ablate.py --step f  (--help for everything)."""

import os
import sys

from ablations.cli.main import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
