import sys

from frcunet.cli import main

sys.exit(main())
