"""anomstream, the application: the command line, the demo, the benchmark.

Layers, top to bottom (each imports only from those below it; ``lint-imports`` checks it in CI):
``anomstream`` -> ``producers`` | ``consumers`` -> ``models`` -> ``stream``.
"""

import sys
from pathlib import Path

from anomstream.names import ShadowedPackageError, check_siblings

__version__ = "0.1.0"

# Before anything of ours imports stream/producers/consumers/models (anomstream/names.py): someone
# else's package of one of those names would fail far from the cause.
try:
    check_siblings()
except ShadowedPackageError as _exc:
    # The console script, or `python -m anomstream` (argv[0] is "-m" while the package is imported).
    if Path(sys.argv[0]).name == "anomstream" or sys.argv[0] == "-m":
        sys.stderr.write(f"error: {_exc}\n")  # the command line: one line, no traceback
        raise SystemExit(1) from None
    raise
