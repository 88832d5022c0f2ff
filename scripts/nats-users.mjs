#!/usr/bin/env node
// Prints deploy/k8s/nats/portcullis-users.conf: the nats-server users of a Portcullis deployment,
// one per role with exactly that role's permissions (natsRolePermissions, libs/contracts). Run
// after a build:  node scripts/nats-users.mjs > deploy/k8s/nats/portcullis-users.conf
import { NATS_DEPLOY_USERS_HEADER, natsAuthorizationConfig, natsDeployUsers } from '../dist/libs/contracts/src/nats-permissions.js';

process.stdout.write(`${NATS_DEPLOY_USERS_HEADER}${natsAuthorizationConfig(natsDeployUsers())}`);
