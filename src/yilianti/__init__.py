"""Yilianti 医联体协同平台."""

__version__ = "0.1.0"
