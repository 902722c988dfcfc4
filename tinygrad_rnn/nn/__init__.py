"""Neural-network layer: modules, recurrent cells and layers, initialisers, utilities."""
from . import functional

__all__ = ["functional"]
