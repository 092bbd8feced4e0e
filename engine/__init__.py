"""tarf-tui engine: data, task cases, models, unlearning methods and the run store.

Modules that must stay importable without torch (the TUI imports them): ``errors``,
``registry``, ``hierarchy``, ``cases``, ``datasets``, ``task``, ``spec``, ``store``.
"""

__version__ = "0.1.0"
