"""Research and benchmark scripts; run each from the repository root as ``python -m bench.NAME``
(they import the product: ``engine``, ``tarf_tui``)."""
