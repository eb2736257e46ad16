#!/bin/sh
# The official image's behaviour: redis-server as the redis user, protected mode off.
set -e
if [ "$1" = "redis-server" ]; then
    shift
    chown -R redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$@" --protected-mode no
fi
exec "$@"
