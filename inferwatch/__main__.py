"""``python -m inferwatch``: the same as the ``inferwatch`` command."""

import sys

from inferwatch.entry import main

if __name__ == "__main__":
    sys.exit(main())
