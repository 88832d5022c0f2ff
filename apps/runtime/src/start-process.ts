/**
 * The process bootstrap: one Nest application (one DI container) holding the roles a process
 * runs, so what they share exists once — the bus connection, the event log, the token verifier
 * and its key cache, the development issuer, the TLS material, metrics and readiness. The CLI's
 * `start` and `serve` and each role's own main.ts call {@link startProcess}.
 */
import 'reflect-metadata';
import { Module, type DynamicModule, type INestApplication, type Provider } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { PortcullisConfig } from '@portcullis/config';
import { createLogger, type Logger } from '@portcullis/common';
import type { DevIssuer } from '@portcullis/identity';
import type { UpstreamConnection } from '@portcullis/gateway';
import { ApprovalModule } from '../../approval/src/approval.module.js';
import { ApprovalRoleService } from '../../approval/src/approval-role.service.js';
import { AuditModule } from '../../audit/src/audit.module.js';
import { EdgeModule } from '../../edge/src/edge.module.js';
import { EdgeService } from '../../edge/src/edge.service.js';
import { PolicyModule } from '../../policy/src/policy.module.js';
import { createAdminHttpAdapter } from './admin-http-adapter.js';
import { BusTransportStrategy } from './bus-transport/bus-transport.strategy.js';
import { CoreModule } from './core.module.js';
import { HttpListeners } from './http/http-listeners.js';
import { streamRequestBodies } from './http/request-body.js';
import { NestLoggerAdapter } from './nest-logger.js';
import { ProcessExceptionFilter } from './process-exception.filter.js';
import { Role } from './roles.js';
import { DEV_ISSUER } from './tokens.js';

/** What a process runs. */
export interface StartProcessOptions {
  readonly config: PortcullisConfig;
  readonly roles: readonly Role[];
  /** Names the process in logs, metrics and its NATS connection; default the roles joined by `+`. */
  readonly label?: string;
  /** Connections the process adds to the edge's (the embedded sandbox). */
  readonly extraConnections?: readonly UpstreamConnection[];
  /** Providers replacing the defaults of the same token (tests inject in-process ports, a verifier, …). */
  readonly overrides?: readonly Provider[];
  /** Default: a pino logger to stderr at `observability.log.level`. */
  readonly logger?: Logger;
}

/** A running process: where its listeners answer, and how to stop it. */
export interface RunningProcess {
  readonly logger: Logger;
  /** The edge's URL (edge role). */
  readonly edgeUrl: string | undefined;
  /** The CA clients should trust for the gateway's certificate, undefined when it chains to their system roots (edge role). */
  readonly caPem: string | undefined;
  /** The development issuer's URL, when it is enabled (edge role). */
  readonly devIssuerUrl: string | undefined;
  /** The approvers' URL (approval role). */
  readonly approvalUrl: string | undefined;
  /** The bound port of each listener this process opened. */
  port(listener: 'edge' | 'approval' | 'audit' | 'observability'): number | undefined;
  /** The Nest application (tests reach providers through it). */
  readonly app: INestApplication;
  /**
   * Stops in order: the listeners close and the roles stop taking work (the edge flushes its
   * group commit), the bus transport drains (requests in flight are answered), then the
   * stores, the bus and the log close. Safe to call twice.
   */
  close(): Promise<void>;
}

@Module({})
class ProcessModule {}

/** Composes `roles` in one Nest application and starts it: start-up errors (NATS, Redis, ClickHouse unreachable) reject with the cause. */
export async function startProcess(opts: StartProcessOptions): Promise<RunningProcess> {
  const { config, roles } = opts;
  const label = opts.label ?? roles.join('+');
  const level = config.observability.log.level;
  const logger = opts.logger ?? createLogger({ base: { role: label, node: config.node.id }, ...(level !== undefined ? { level } : {}) });
  const has = (role: Role): boolean => roles.includes(role);
  const replayApi = has(Role.Audit) && config.audit.listen !== undefined;
  const imports: DynamicModule['imports'] = [
    CoreModule.forRoot({ config, label, roles, logger, identity: has(Role.Edge) || has(Role.Approval) || replayApi, overrides: opts.overrides ?? [] }),
  ];
  // Policy first, edge last: the edge takes traffic only once decisions can be answered.
  if (has(Role.Policy)) imports.push(PolicyModule);
  if (has(Role.Approval)) imports.push(ApprovalModule);
  if (has(Role.Audit)) imports.push(AuditModule.forRoot({ replayApi }));
  if (has(Role.Edge)) imports.push(EdgeModule.forRoot({ devIssuer: config.identity.devIssuer.enabled, extraConnections: opts.extraConnections ?? [] }));

  const http = createAdminHttpAdapter();
  const app = await NestFactory.create<NestFastifyApplication>({ module: ProcessModule, imports }, http.adapter, {
    logger: new NestLoggerAdapter(logger),
    bodyParser: false,
    abortOnError: false,
  });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= app.close());
  try {
    streamRequestBodies(app);
    app.useGlobalFilters(new ProcessExceptionFilter(logger));
    app.connectMicroservice<MicroserviceOptions>({ strategy: app.get(BusTransportStrategy) }, { inheritAppConfig: true });
    // 1. Every role builds what it serves with (the policy role loads its policy).
    await app.init();
    await http.adapter.getInstance().ready();
    // 2. The bus handlers join their queue groups (a held one when its role opens it).
    await app.startAllMicroservices();
    // 3. The listeners open, the edge's data path with them.
    const listeners = app.get(HttpListeners);
    listeners.attach(http.handler());
    await listeners.openAll();
    const edge = has(Role.Edge) ? app.get(EdgeService).endpoint : undefined;
    return {
      logger,
      edgeUrl: edge?.url,
      caPem: edge?.caPem,
      devIssuerUrl: has(Role.Edge) ? app.get<DevIssuer | undefined>(DEV_ISSUER)?.issuer : undefined,
      approvalUrl: has(Role.Approval) ? app.get(ApprovalRoleService).url : undefined,
      port: (listener) => listeners.port(listener),
      app,
      close,
    };
  } catch (err) {
    await close().catch((closeErr: unknown) => logger.warn('could not close after a failed start', { err: closeErr }));
    throw err;
  }
}

/**
 * Runs until SIGINT or SIGTERM, then closes `running` and `after` (e.g. the sandbox); a close that
 * hangs is cut after 10 s with exit code 1.
 */
export async function runUntilSignal(running: Pick<RunningProcess, 'logger' | 'close'>, after?: () => Promise<unknown>): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  running.logger.info('shutting down');
  const hard = setTimeout(() => process.exit(1), 10_000);
  hard.unref();
  await running.close();
  await after?.();
}
