"""The whole method in one command: profile, train, select, finalize, baselines, export, bench, report."""
