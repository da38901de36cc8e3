"""``python -m sjti.bench``."""

from . import main

raise SystemExit(main())
