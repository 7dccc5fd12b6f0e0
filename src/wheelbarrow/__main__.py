from wheelbarrow._cli import main

raise SystemExit(main())
