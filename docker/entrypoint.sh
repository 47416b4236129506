#!/bin/sh
# Entry point of the terse images: with no command, print what terse is and sees (version,
# configuration, devices, placement); otherwise run the command.
if [ "$#" -eq 0 ]; then
    exec terse_info
fi
exec "$@"
