import { Buckets, Consumers, Streams, Subjects } from './subjects.js';

/**
 * Least privilege on the bus: what each role's NATS user may publish and subscribe to. The one
 * source of the nats-server permission config: the test harness, the local cluster and
 * deploy/k8s all render theirs with {@link natsAuthorizationConfig}.
 */

/** The NATS identities: the four roles and `operator` (the CLI's `policy push` / `policy explain`). */
export const BusRoles = ['edge', 'policy', 'approval', 'audit', 'operator'] as const;
export type BusRole = (typeof BusRoles)[number];

/** A role's allow (and deny) lists, in nats-server's terms. */
export interface NatsRolePermissions {
  readonly publish: { readonly allow: readonly string[]; readonly deny: readonly string[] };
  readonly subscribe: { readonly allow: readonly string[]; readonly deny: readonly string[] };
  /** May answer requests it received (reply subjects are allowed once each). */
  readonly allowResponses: boolean;
}

/** A role's NATS user name: `portcullis-<role>` (the harness, the local cluster, deploy/k8s). */
export function natsUserName(role: BusRole): string {
  return `portcullis-${role}`;
}

/** The inbox prefix a role's connection uses; its user may subscribe to `<prefix>.>` only. */
export function natsInboxPrefix(role: BusRole): string {
  return `_INBOX_${role}`;
}

const API = '$JS.API';
const AUDIT = Streams.audit.name;
const DEAD_LETTER = Streams.deadLetter.name;
const POLICY_KV = `KV_${Buckets.policy}`;
/** The signed chain heads' stream (deny_delete, deny_purge; see libs/audit-store audit-checkpoint.ts). */
const CHECKPOINTS = 'PORTCULLIS_CHECKPOINTS';
/** Where a signer stores its checkpoints: its own role's subject, and `cli` for the CLI's one-event chains. */
const checkpointSubjects = (role: string): string[] => [`portcullis.checkpoints.${role}`, 'portcullis.checkpoints.cli'];
/** Read a whole stream (ordered consumers and direct gets), as `audit verify` reads the checkpoints. */
const readStream = (stream: string): string[] => [
  ...useStream(stream),
  `${API}.DIRECT.GET.${stream}`,
  `${API}.STREAM.MSG.GET.${stream}`,
  `${API}.CONSUMER.CREATE.${stream}.>`,
  `${API}.CONSUMER.INFO.${stream}.>`,
  `${API}.CONSUMER.DELETE.${stream}.>`,
  `${API}.CONSUMER.MSG.NEXT.${stream}.*`,
];
/** The policy role's and the CLI's own events: policy.activated/rejected, policy.pushed, evidence.read. */
const SYSTEM_EVENTS = 'audit._system.>';

/** Look a stream up and create it when missing; never change or remove it. */
const useStream = (stream: string): string[] => [`${API}.STREAM.INFO.${stream}`, `${API}.STREAM.CREATE.${stream}`];
/** Read a KV bucket: open (create when missing), get, watch (ordered consumers). */
const readKv = (stream: string): string[] => [
  ...useStream(stream),
  `${API}.DIRECT.GET.${stream}`,
  `${API}.DIRECT.GET.${stream}.>`,
  `${API}.STREAM.MSG.GET.${stream}`,
  `${API}.CONSUMER.CREATE.${stream}.>`,
  `${API}.CONSUMER.INFO.${stream}.>`,
  `${API}.CONSUMER.DELETE.${stream}.>`,
];
/** An approval event on the audit stream (the approval role's projection is rebuilt from these). */
const APPROVAL_EVENTS = Subjects.auditApprovalEvents();
const APPROVAL_DECIDED = 'portcullis.approval.decided.*';

/**
 * Every role: JetStream account info, looking up (the `jetstream` readiness check) or creating
 * (at start-up, when missing) the audit stream, and creating and reading the checkpoint stream
 * (every role signs its chains' heads; `audit verify` reads them with the role's config).
 */
const EVERY_ROLE = [`${API}.INFO`, ...useStream(AUDIT), ...readStream(CHECKPOINTS)];

function perms(p: { pub: string[]; pubDeny?: string[]; sub: string[]; responses?: boolean }): NatsRolePermissions {
  return {
    publish: { allow: [...new Set([...EVERY_ROLE, ...p.pub])], deny: p.pubDeny ?? [] },
    subscribe: { allow: p.sub, deny: [] },
    allowResponses: p.responses ?? false,
  };
}

/** Exactly what each role does on the bus (worked out from nats-server's permission violations). */
export function natsRolePermissions(role: BusRole): NatsRolePermissions {
  const inbox = `${natsInboxPrefix(role)}.>`;
  switch (role) {
    case 'edge':
      // Asks policy and approval, appends its own audit events, follows policy swaps and approval
      // decisions. Never: the policy KV, approval decisions or approval events, stream changes.
      return perms({
        pub: [
          Subjects.policyDecide(),
          Subjects.policyExplain(),
          Subjects.approvalGate(),
          Subjects.auditAll(),
          ...useStream(AUDIT),
          ...checkpointSubjects('edge'),
        ],
        pubDeny: [APPROVAL_EVENTS, 'audit._system.policy.>'],
        sub: [inbox, Subjects.policyChanged(), APPROVAL_DECIDED],
      });
    case 'policy':
      // Answers decide/explain, follows (reads) the policy bucket, announces swaps.
      return perms({
        pub: [Subjects.policyChanged(), ...readKv(POLICY_KV), SYSTEM_EVENTS, ...checkpointSubjects('policy')],
        sub: [inbox, Subjects.policyDecide(), Subjects.policyExplain()],
        responses: true,
      });
    case 'approval':
      // Answers the gate, journals approval events and replays them (ordered consumers filtered to
      // approval events), broadcasts decisions.
      return perms({
        pub: [
          APPROVAL_DECIDED,
          APPROVAL_EVENTS,
          ...useStream(AUDIT),
          ...checkpointSubjects('approval'),
          `${API}.CONSUMER.CREATE.${AUDIT}.*.${APPROVAL_EVENTS}`,
          `${API}.CONSUMER.MSG.NEXT.${AUDIT}.*`,
          `${API}.CONSUMER.INFO.${AUDIT}.*`,
          `${API}.CONSUMER.DELETE.${AUDIT}.*`,
        ],
        pubDeny: [
          `${API}.CONSUMER.MSG.NEXT.${AUDIT}.${Consumers.auditWriter}`,
          `${API}.CONSUMER.INFO.${AUDIT}.${Consumers.auditWriter}`,
          `${API}.CONSUMER.DELETE.${AUDIT}.${Consumers.auditWriter}`,
        ],
        sub: [inbox, Subjects.approvalGate()],
        responses: true,
      });
    case 'audit':
      // The durable writer: owns the streams' settings, consumes and acks, dead-letters, and
      // appends its retention events.
      return perms({
        pub: [
          Subjects.auditAll(),
          Subjects.auditDeadLetter(),
          ...useStream(AUDIT),
          ...useStream(DEAD_LETTER),
          `${API}.STREAM.UPDATE.${AUDIT}`,
          `${API}.STREAM.UPDATE.${DEAD_LETTER}`,
          `${API}.STREAM.UPDATE.${CHECKPOINTS}`,
          ...checkpointSubjects('audit'),
          `${API}.CONSUMER.CREATE.${AUDIT}.${Consumers.auditWriter}`,
          `${API}.CONSUMER.INFO.${AUDIT}.${Consumers.auditWriter}`,
          `${API}.CONSUMER.MSG.NEXT.${AUDIT}.${Consumers.auditWriter}`,
          `$JS.ACK.${AUDIT}.${Consumers.auditWriter}.>`,
        ],
        pubDeny: [APPROVAL_EVENTS],
        sub: [inbox],
      });
    case 'operator':
      // `portcullis policy push` / `policy explain` / audit reads: the only identity that writes the policy
      // bucket; records its push and its reads (audit._system) and signs them (checkpoints.cli).
      return perms({
        pub: [
          `$KV.${Buckets.policy}.>`,
          ...readKv(POLICY_KV),
          Subjects.policyExplain(),
          SYSTEM_EVENTS,
          'portcullis.checkpoints.cli',
          ...readStream(CHECKPOINTS),
        ],
        sub: [inbox],
      });
  }
}

/** The union of several roles' permissions: the user of a process running them together. */
export function natsPermissionsFor(roles: readonly BusRole[]): NatsRolePermissions {
  const each = roles.map(natsRolePermissions);
  const union = (pick: (p: NatsRolePermissions) => readonly string[]): string[] => [...new Set(each.flatMap(pick))];
  // A deny of one role must not take away what another role of the same user needs.
  const pubAllow = union((p) => p.publish.allow);
  return {
    publish: { allow: pubAllow, deny: union((p) => p.publish.deny).filter((d) => !pubAllow.includes(d)) },
    subscribe: { allow: union((p) => p.subscribe.allow), deny: union((p) => p.subscribe.deny) },
    allowResponses: each.some((p) => p.allowResponses),
  };
}

/** One NATS user of the generated config. */
export interface NatsUserSpec {
  readonly user: string;
  /** The password as a literal, or `{ env }`: nats-server reads it from that environment variable. */
  readonly password: string | { readonly env: string };
  readonly roles: readonly BusRole[];
}

const list = (items: readonly string[]): string => `[${items.map((s) => JSON.stringify(s)).join(', ')}]`;

/** One user's entry of the `users` list, with exactly its roles' permissions. */
export function natsUserEntry(u: NatsUserSpec): string {
  const p = natsPermissionsFor(u.roles);
  const pass = typeof u.password === 'string' ? JSON.stringify(u.password) : `$${u.password.env}`;
  const rule = (r: { allow: readonly string[]; deny: readonly string[] }): string =>
    `{ allow: ${list(r.allow)}${r.deny.length > 0 ? `, deny: ${list(r.deny)}` : ''} }`;
  return [
    `    # ${u.roles.join(' + ')}`,
    `    {`,
    `      user: ${JSON.stringify(u.user)}`,
    `      password: ${pass}`,
    `      permissions: {`,
    `        publish: ${rule(p.publish)}`,
    `        subscribe: ${rule(p.subscribe)}`,
    ...(p.allowResponses ? [`        allow_responses: true`] : []),
    `      }`,
    `    }`,
  ].join('\n');
}

/**
 * The nats-server `authorization { users = [...] }` block giving each user exactly its roles'
 * permissions. Passwords given as `{ env }` are written as `$VAR` references, so the file holds
 * no secret. `extraEntries` are appended verbatim (the test harness's unrestricted tooling user).
 */
export function natsAuthorizationConfig(users: readonly NatsUserSpec[], extraEntries: readonly string[] = []): string {
  return ['authorization {', '  users = [', ...users.map(natsUserEntry), ...extraEntries, '  ]', '}', ''].join('\n');
}

/**
 * deploy/k8s's users: one per role, `portcullis-<role>`, the password read by nats-server from
 * `PORTCULLIS_<ROLE>_NATS_PASSWORD` (deploy/k8s/nats/portcullis-users.conf).
 */
export function natsDeployUsers(): NatsUserSpec[] {
  return BusRoles.map((role) => ({ user: natsUserName(role), password: { env: `PORTCULLIS_${role.toUpperCase()}_NATS_PASSWORD` }, roles: [role] }));
}

/** The header of deploy/k8s/nats/portcullis-users.conf: how it is made and checked. */
export const NATS_DEPLOY_USERS_HEADER = `# Portcullis's NATS users, one per role, each allowed exactly its subjects (include this file in
# the NATS servers' config: deploy/README.md). Generated from natsRolePermissions
# (libs/contracts/src/nats-permissions.ts) by: node scripts/nats-users.mjs > deploy/k8s/nats/portcullis-users.conf
# test/deploy/manifests.test.ts fails when this file and the code differ. Passwords are read from
# the environment of the NATS servers ($PORTCULLIS_<ROLE>_NATS_PASSWORD); the file holds no secret.
`;
