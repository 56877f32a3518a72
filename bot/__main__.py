import sys

from bot.interfaces.cli import main

sys.exit(main())
