"""``python -m visio_memoria_ros.cli``: the same as the ``visio-memoria`` command."""

import sys

from . import main

sys.exit(main())
