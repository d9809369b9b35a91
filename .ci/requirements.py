"""Print kvscope's requirements from pyproject.toml, plus those of the extras named as arguments, one a line.

The Makefile installs them (`pip install -r`) before the editable install of kvscope itself: that one writes
kvscope.egg-info into the source tree, so it runs one at a time, and with its requirements already in place
it takes seconds instead of holding the other virtualenvs' builds back.
"""

import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: nothing printed; the editable install then installs them itself
    sys.exit(0)

project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
requirements = list(project["dependencies"])
for extra in sys.argv[1:]:
    requirements += project["optional-dependencies"][extra]
print("\n".join(requirements))
