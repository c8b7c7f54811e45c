"""``python -m visio_memoria_ros.ui``: serve the labelling page (see ``launcher``)."""

from __future__ import annotations

import sys

from .launcher import main

if __name__ == "__main__":
    sys.exit(main())
