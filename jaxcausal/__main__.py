"""`python -m jaxcausal` runs the `jaxcausal` command."""

import sys

from .cli import main

sys.exit(main())
