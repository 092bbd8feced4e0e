"""``python -m tarf_tui``: the ``tarf-tui`` command (the entry point is the only importer of the shell)."""

from . import cli

if __name__ == "__main__":
    cli.main()
