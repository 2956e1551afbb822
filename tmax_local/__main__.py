from tmax_local.cli import main

raise SystemExit(main())
