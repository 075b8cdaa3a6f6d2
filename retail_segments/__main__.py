import sys

from retail_segments.ops.cli import main

sys.exit(main())
