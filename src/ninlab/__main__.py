import sys

from ninlab.cli import main

sys.exit(main())
