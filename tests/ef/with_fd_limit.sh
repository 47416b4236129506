#!/bin/sh
# usage: with_fd_limit.sh N COMMAND...
# Runs COMMAND with a soft open-file limit of N (the hard limit unchanged), as in a container
# or CI job with a low default.
ulimit -Sn "$1" || exit 1
shift
exec "$@"
