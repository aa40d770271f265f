"""Subcommands of the ``pixelrnn`` command line (see ``pixelrnn.cli``): one module per command,
each with ``register(subparsers)``; what they share is in ``common``."""
