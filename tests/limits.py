"""Time limits of the tests: each only guards against a hang (a process stuck in a collective,
a trainer that never starts), never against a slow machine. A loaded 2-core machine runs
several times slower than an idle one, so the limits are far above any normal run."""

HANG_S = 1500  # a subprocess that trains, evaluates or compiles
QUICK_HANG_S = 600  # a subprocess that only starts Python (flags, --help, a screenshot)
