"""The `qatune` command line: thin modules that parse, call the library, print and pick the exit code."""
