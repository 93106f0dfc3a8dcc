"""``python3 -m arm64host`` (with ``tools/arm64host`` on ``sys.path``)."""

from __future__ import annotations

import sys

from arm64host.cli import main

sys.exit(main())
