"""Unlearning methods. ``params`` (torch-free) is the catalogue of names, descriptions and
``Params``; the implementations live one per file and register into ``METHODS`` when
``engine.methods.impl`` is imported (that module imports torch)."""
