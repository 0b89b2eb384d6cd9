import sys

from dxmacro.cli import main

sys.exit(main())
