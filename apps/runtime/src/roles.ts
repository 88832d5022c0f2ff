/** The roles a process can run. */
export const Role = { Edge: 'edge', Policy: 'policy', Approval: 'approval', Audit: 'audit' } as const;
export type Role = (typeof Role)[keyof typeof Role];

/** Every role, in start order: policy first, edge last (it takes traffic only once decisions can be answered). */
export const ALL_ROLES: readonly Role[] = [Role.Policy, Role.Approval, Role.Audit, Role.Edge];
