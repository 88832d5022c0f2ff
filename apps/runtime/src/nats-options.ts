import type { NatsBusOptions } from '@portcullis/bus';
import type { PortcullisConfig } from '@portcullis/config';
import { BusRoles, natsInboxPrefix, natsUserName, type BusRole } from '@portcullis/contracts';
import { ALL_ROLES, type Role } from './roles.js';

/**
 * How a process (or the CLI, as `operator`) connects to NATS: the servers, its credentials and
 * the inbox prefix of its first role, the only inboxes its NATS user may subscribe to
 * (`natsRolePermissions` in @portcullis/contracts).
 */
export function natsConnectOptions(
  nats: PortcullisConfig['bus']['nats'],
  roles: readonly (Role | 'operator')[],
): Pick<NatsBusOptions, 'servers' | 'user' | 'pass' | 'token' | 'inboxPrefix'> {
  const first = [...ALL_ROLES, 'operator' as const].find((r) => roles.includes(r));
  return {
    servers: [...nats.servers],
    ...(nats.user !== undefined ? { user: nats.user } : {}),
    ...(nats.password !== undefined ? { pass: nats.password } : {}),
    ...(nats.token !== undefined ? { token: nats.token } : {}),
    ...(first !== undefined ? { inboxPrefix: natsInboxPrefix(first) } : {}),
  };
}

/**
 * The bus identity the CLI acts as: the role whose NATS user the config logs in as (an operator
 * running `audit verify` with the audit role's config), else `operator`. It picks the inbox prefix
 * that user may subscribe to.
 */
export function cliBusRole(nats: PortcullisConfig['bus']['nats']): BusRole {
  return BusRoles.find((r) => natsUserName(r) === nats.user) ?? 'operator';
}
