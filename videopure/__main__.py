import sys

from videopure.cli import main

sys.exit(main())
