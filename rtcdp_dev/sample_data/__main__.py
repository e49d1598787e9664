"""`python -m rtcdp_dev.sample_data`: the `rtcdp-sample-data` command line."""

import sys

from rtcdp_dev.sample_data.cli import main

sys.exit(main())
