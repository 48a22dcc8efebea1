#!/usr/bin/env bash
# Entrypoint of the `mongo` container (official mongo:8 image): makes sure the replica-set
# keyfile exists, then hands over to the image's own docker-entrypoint.sh with the mongod
# arguments from docker-compose.yml.
#
# Why a keyfile on a single node: transactions (our outbox) need a replica set, and a replica
# set with authorization enabled refuses to start without internal authentication between
# members, even when there is only one member. The key never leaves this container, so it is
# generated once and kept on the config volume; mongod wants it owned by its user and not
# readable by anyone else.
#
# The image's docker-entrypoint.sh then does the rest on the first start (empty /data/db):
# it runs a temporary mongod WITHOUT --replSet/--keyFile/--auth, bound to the container's IP
# only, creates the root user from MONGO_INITDB_ROOT_USERNAME/PASSWORD, stops it and starts
# the real mongod with our arguments (plus --auth). That is why /docker-entrypoint-initdb.d
# cannot initiate the replica set, and the `mongo-init` service does it afterwards
# (init-replica-set.js).
set -euo pipefail

keyfile=/data/configdb/keyfile
if [ ! -s "$keyfile" ]; then
    # 756 random bytes are 1008 base64 characters; mongod accepts 6 to 1024.
    head -c 756 /dev/urandom | base64 -w 0 > "$keyfile.tmp"
    mv "$keyfile.tmp" "$keyfile"
fi
chown mongodb:mongodb "$keyfile"
chmod 400 "$keyfile"

exec docker-entrypoint.sh "$@"
