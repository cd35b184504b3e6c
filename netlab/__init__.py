"""netlab: a cluster-networking lab emulator."""

__version__ = "0.1.0"
