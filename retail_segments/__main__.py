import sys

from retail_segments.cli import main

sys.exit(main())
