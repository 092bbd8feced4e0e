"""tarf-tui front ends: the Textual app, `tarf-tui headless` and result inspection.
Never imports torch: the engine subprocess owns it."""

__version__ = "0.1.0"
