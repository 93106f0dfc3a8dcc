"""``python -m vcpuhp``: the ``vcpuhp`` command, without relying on scripts being on PATH."""

import sys

from vcpuhp.cli import main

sys.exit(main())
