"""Subcommands of the ``pixelrnn`` command line (see ``pixelrnn.cli``)."""
