import sys

from functions.cli import process_main

sys.exit(process_main())
