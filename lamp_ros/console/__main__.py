"""`python -m lamp_ros.console`: the same as `lamp-ros console`."""
from lamp_ros.console.app import main

raise SystemExit(main())
