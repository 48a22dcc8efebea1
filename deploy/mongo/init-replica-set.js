// One-shot initialisation for docker-compose's `mongo-init` service, run with
//   mongosh --nodb --quiet --norc --file /deploy/mongo/init-replica-set.js
// against the `mongo` service (mongo:8 started with --replSet rs0 --keyFile, see
// mongod-entrypoint.sh). Safe to run on every `docker compose up`:
//   1. connect as the root user (created by the image from MONGO_INITDB_ROOT_*), retrying
//      while mongod is still starting or still in the image's first-start init phase;
//   2. initiate the single-member replica set rs0 with host "mongo:27017" if it is not yet
//      initiated (the services connect with ?replicaSet=rs0, so that member name must
//      resolve for them: it is the compose service name);
//   3. wait until this member is primary (writable);
//   4. for each service whose <SERVICE>_MONGO_PASSWORD is set, create or update the user
//      <service> in database samskab_<service> with exactly readWrite on that database and
//      nothing else (updating resets the password and the roles, so a rotated password or a
//      role added by hand is brought back to the declared state).
// Exits non-zero on failure, so services that depend on it with
// `condition: service_completed_successfully` do not start against a half-initialised
// database.
'use strict';

const SERVICES = ['ambassadors', 'networks', 'events', 'newsletter', 'social'];
const host = process.env.MONGO_HOST || 'mongo:27017';
const replicaSet = process.env.MONGO_REPLICA_SET || 'rs0';
const rootUser = process.env.MONGO_ROOT_USERNAME;
const rootPassword = process.env.MONGO_ROOT_PASSWORD;
const deadlineMs = Number(process.env.MONGO_INIT_TIMEOUT_SECONDS || 120) * 1000;

// Server error codes we act on.
const NOT_YET_INITIALIZED = 94;
const ALREADY_INITIALIZED = 23;

function log(message) {
  print(`mongo-init: ${message}`);
}

function fail(message) {
  log(`FAILED: ${message}`);
  quit(1);
}

// runCommand that reports server errors as {ok: 0, code, codeName, errmsg} whether the shell
// throws them or returns them; network errors (no server code) are thrown.
function command(db, cmd) {
  let result;
  try {
    result = db.runCommand(cmd);
  } catch (e) {
    if (typeof e.code !== 'number') {
      throw e;
    }
    return { ok: 0, code: e.code, codeName: e.codeName, errmsg: e.message };
  }
  return result;
}

function must(db, cmd) {
  const result = command(db, cmd);
  if (result.ok !== 1) {
    const name = Object.keys(cmd)[0];
    throw new Error(`${name} failed: ${result.codeName || result.code}: ${result.errmsg}`);
  }
  return result;
}

function retry(what, fn) {
  const started = Date.now();
  for (;;) {
    try {
      return fn();
    } catch (e) {
      if (Date.now() - started > deadlineMs) {
        fail(`${what}: ${e.message}`);
      }
      log(`${what}: ${e.message} (retrying)`);
      sleep(2000);
    }
  }
}

if (!rootUser || !rootPassword) {
  fail('MONGO_ROOT_USERNAME and MONGO_ROOT_PASSWORD must be set');
}

// Credentials go into the URI percent-encoded, so any password works here.
const uri =
  `mongodb://${encodeURIComponent(rootUser)}:${encodeURIComponent(rootPassword)}@${host}/admin` +
  '?authSource=admin&directConnection=true&serverSelectionTimeoutMS=3000';

// 1. Connect. Until mongod listens, or until the image's entrypoint has created the root
//    user, this fails and is retried. (While the entrypoint's temporary init-phase mongod
//    runs, step 2 sees "not running with --replSet" and retries as well.)
const conn = retry('connect', () => {
  const c = new Mongo(uri);
  must(c.getDB('admin'), { ping: 1 });
  return c;
});
const admin = conn.getDB('admin');

// 2. Initiate the replica set once.
retry('replica set', () => {
  const status = command(admin, { replSetGetStatus: 1 });
  if (status.ok === 1) {
    log(`replica set ${status.set} already initiated`);
    return;
  }
  if (status.code !== NOT_YET_INITIALIZED) {
    throw new Error(`replSetGetStatus: ${status.codeName || status.code}: ${status.errmsg}`);
  }
  const result = command(admin, {
    replSetInitiate: { _id: replicaSet, members: [{ _id: 0, host: host }] },
  });
  if (result.ok !== 1 && result.code !== ALREADY_INITIALIZED) {
    throw new Error(`replSetInitiate: ${result.codeName || result.code}: ${result.errmsg}`);
  }
  log(`replica set ${replicaSet} initiated with member ${host}`);
});

// 3. Users can only be written on the primary.
retry('primary', () => {
  const hello = must(admin, { hello: 1 });
  if (!hello.isWritablePrimary) {
    throw new Error('not primary yet');
  }
});

// 4. One least-privilege user per service, in its own database (authSource=samskab_<svc>).
let configured = 0;
for (const service of SERVICES) {
  const password = process.env[`${service.toUpperCase()}_MONGO_PASSWORD`];
  if (!password) {
    log(`${service}: no ${service.toUpperCase()}_MONGO_PASSWORD, user not managed`);
    continue;
  }
  const dbName = `samskab_${service}`;
  const db = conn.getDB(dbName);
  const roles = [{ role: 'readWrite', db: dbName }];
  retry(`user ${service}`, () => {
    const existing = must(db, { usersInfo: service });
    if (existing.users.length > 0) {
      must(db, { updateUser: service, pwd: password, roles: roles });
      log(`${service}: user updated (readWrite on ${dbName})`);
    } else {
      must(db, { createUser: service, pwd: password, roles: roles });
      log(`${service}: user created (readWrite on ${dbName})`);
    }
  });
  configured += 1;
}

if (configured === 0) {
  fail('no <SERVICE>_MONGO_PASSWORD set: no service could log in');
}
log('done');
quit(0);
