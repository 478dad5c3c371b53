"""The command line: check, fmt, plan, explain, components, run, runs, report."""
