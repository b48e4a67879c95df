"""The verbs of the ``anomstream`` command line, by what they are for (see ``anomstream.cli``)."""
