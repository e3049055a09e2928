import sys

from anatlearn.cli import main

sys.exit(main())
