"""``python -m flaggems_exp``: the self-check (see ``flaggems_exp.selfcheck``)."""
import sys

from .selfcheck import main

sys.exit(main())
