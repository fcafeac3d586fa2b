"""`python -m pali_pax.cli ...` = the `pali-pax` console script (subprocesses use this form)."""

import sys

from pali_pax.cli import main

sys.exit(main())
