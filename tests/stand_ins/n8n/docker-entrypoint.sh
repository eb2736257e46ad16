#!/bin/sh
# As the official image's: run n8n with the container's arguments (`start` by default).
if [ "$#" -gt 0 ]; then
    exec n8n "$@"
fi
exec n8n
