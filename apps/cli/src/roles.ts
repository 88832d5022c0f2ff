import 'reflect-metadata';
import { Module, type DynamicModule, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { PlatformModule, type Platform } from '../../runtime/src/index.js';
import { EdgeModule } from '../../edge/src/edge.module.js';
import { PolicyModule } from '../../policy/src/policy.module.js';
import { ApprovalModule } from '../../approval/src/approval.module.js';
import { AuditModule } from '../../audit/src/audit.module.js';
import type { UpstreamConnection } from '@portcullis/gateway';

/** The roles a process can run. */
export const Role = { Edge: 'edge', Policy: 'policy', Approval: 'approval', Audit: 'audit' } as const;
export type Role = (typeof Role)[keyof typeof Role];
export const ALL_ROLES: readonly Role[] = [Role.Policy, Role.Approval, Role.Audit, Role.Edge];

@Module({})
class RolesModule {}

/** Boots a Nest application context holding the given roles on one platform. */
export async function bootRoles(
  platform: Platform,
  roles: readonly Role[],
  extraConnections: readonly UpstreamConnection[] = [],
): Promise<INestApplicationContext> {
  const imports: DynamicModule['imports'] = [PlatformModule.forRoot(platform)];
  // Policy first, edge last: the edge accepts traffic only once decisions can be answered.
  if (roles.includes(Role.Policy)) imports.push(PolicyModule);
  if (roles.includes(Role.Approval)) imports.push(ApprovalModule);
  if (roles.includes(Role.Audit)) imports.push(AuditModule);
  if (roles.includes(Role.Edge)) imports.push(EdgeModule.forRoot(extraConnections));
  const root: DynamicModule = { module: RolesModule, imports };
  const app = await NestFactory.createApplicationContext(root, { logger: ['error', 'warn'], abortOnError: false });
  await app.init();
  return app;
}
