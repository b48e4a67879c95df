"""anomstream, the application: the command line, the demo, the benchmark.

Layers, top to bottom (each imports only from those below it; ``lint-imports`` checks it in CI):
``anomstream`` -> ``producers`` | ``consumers`` -> ``models`` -> ``stream``.
"""

__version__ = "0.1.0"
