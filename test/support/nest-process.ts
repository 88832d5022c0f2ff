/**
 * Boots roles as the product does — one Nest application over startProcess (apps/runtime) — with
 * test ports injected: an in-process bus the test also holds, a verifier trusting a test issuer,
 * a TLS certificate from the test's own CA. What the test does not replace is the real provider.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Provider } from '@nestjs/common';
import { createInProcessBus, type BusHandle } from '@portcullis/bus';
import { parseConfig, type PortcullisConfig } from '@portcullis/config';
import { silentLogger, type Logger } from '@portcullis/common';
import { ClientTrustSource, type DevTls } from '@portcullis/tls';
import type { TokenVerifier } from '@portcullis/identity';
import { GATEWAY_TLS, PROCESS_BUS, TOKEN_VERIFIER, type GatewayTls, type ProcessBus } from '../../apps/runtime/src/index.js';
import { startProcess, type RunningProcess } from '../../apps/runtime/src/start-process.js';
import type { Role } from '../../apps/runtime/src/roles.js';

export { Role } from '../../apps/runtime/src/roles.js';
export type { RunningProcess } from '../../apps/runtime/src/start-process.js';

/** A validated config from `raw` (the YAML's shape), with a fresh state dir unless `raw.node` names one. */
export function testConfig(raw: Record<string, unknown>, dir: string = mkdtempSync(join(tmpdir(), 'nest-process-'))): PortcullisConfig {
  return parseConfig(
    { node: { id: 'test-node', stateDir: join(dir, 'state') }, audit: { sqlite: { file: join(dir, 'audit.db') } }, ...raw },
    { configDir: dir },
  );
}

/** The process bus over `handle`; the test keeps owning it (the process does not close it). */
export function inProcessBus(handle: BusHandle): ProcessBus {
  return { handle, log: handle.log, nats: undefined, embeddedAuditStore: undefined, close: () => Promise.resolve() };
}

/** TLS material from a test CA, as GATEWAY_TLS provides it. */
export function testTls(tls: Pick<DevTls, 'certPem' | 'keyPem' | 'caPem'>): GatewayTls {
  return { certPem: tls.certPem, keyPem: tls.keyPem, caPem: tls.caPem, trust: ClientTrustSource.DevCa };
}

/** What {@link startTestProcess} runs. */
export interface TestProcessOptions {
  readonly config: PortcullisConfig;
  readonly roles: readonly Role[];
  /** The in-process bus the roles use (and the test serves or asks on). Default: the process's own. */
  readonly bus?: BusHandle;
  readonly verifier?: TokenVerifier;
  readonly tls?: GatewayTls;
  readonly overrides?: readonly Provider[];
  readonly logger?: Logger;
}

/** Starts `roles` in one Nest application with the given test ports. */
export function startTestProcess(opts: TestProcessOptions): Promise<RunningProcess> {
  const overrides: Provider[] = [
    ...(opts.bus !== undefined ? [{ provide: PROCESS_BUS, useValue: inProcessBus(opts.bus) }] : []),
    ...(opts.verifier !== undefined ? [{ provide: TOKEN_VERIFIER, useValue: opts.verifier }] : []),
    ...(opts.tls !== undefined ? [{ provide: GATEWAY_TLS, useValue: opts.tls }] : []),
    ...(opts.overrides ?? []),
  ];
  return startProcess({ config: opts.config, roles: opts.roles, logger: opts.logger ?? silentLogger, overrides });
}

/** A fresh in-process bus (handle) for {@link startTestProcess}. */
export { createInProcessBus };
