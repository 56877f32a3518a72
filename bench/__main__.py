import sys

try:
    from bench.run import main
except KeyboardInterrupt:  # Ctrl-C while the imports load: one line, no traceback
    print("\n[bench] interrupted.", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
