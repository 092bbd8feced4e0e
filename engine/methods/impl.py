"""Importing this module registers every method implementation into ``base.METHODS``."""

from . import bs, ft, ga, iu, l1_sparse, retrained, rl, salun, scrub, tarf, tarf_i  # noqa: F401
from .base import METHODS

__all__ = ["METHODS"]
