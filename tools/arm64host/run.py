#!/usr/bin/env python3
"""Build and run the project's emulated arm64 KVM host: ``run.py {build,run,paths,shell}``.

Standard library only, so a bare checkout can run it; see README.md here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from arm64host.cli import main

if __name__ == "__main__":
    sys.exit(main())
