"""``python -m vcpuhp.cli``: the ``vcpuhp`` command."""

import sys

from vcpuhp.cli import main

sys.exit(main())
