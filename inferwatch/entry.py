"""The ``inferwatch`` command's entry point: check that the installation is whole, then run
the CLI. Imports nothing else of inferwatch's until the check has passed."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from inferwatch.install import foreign_packages


def main(argv: Sequence[str] | None = None) -> int:
    problems = foreign_packages()
    if problems:
        print("inferwatch: this environment holds other packages under inferwatch's package names:\n  "
              + "\n  ".join(problems)
              + "\nInstall inferwatch into an environment of its own: `pipx install inferwatch`, or "
                "`python3 -m venv /opt/inferwatch && /opt/inferwatch/bin/pip install inferwatch` "
                "(README, \"Install\").", file=sys.stderr)
        return 2
    from inferwatch.cli import main as cli_main

    return cli_main(argv)
