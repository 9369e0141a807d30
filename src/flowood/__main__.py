import sys

from flowood.cli.app import main

sys.exit(main())
