import sys

from speechcompress.cli import main

sys.exit(main())
