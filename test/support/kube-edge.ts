/**
 * An in-process edge in front of sandbox API servers, for data-path tests with real kubectl and
 * @kubernetes/client-node: in-process bus, a real policy engine answering over it, an event log
 * that keeps every appended event for assertions, the development issuer for tokens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInProcessBus, type BusHandle, type MessageBus } from '@portcullis/bus';
import { decisionReply, decodeDecisionRequest, encodeDecisionReply, QueueGroups, Streams, Subjects } from '@portcullis/contracts';
import { evaluate, parsePolicy } from '@portcullis/policy-engine';
import { DevIssuer, TokenVerifier } from '@portcullis/identity';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { listenUrl, silentLogger } from '@portcullis/common';
import {
  ApprovalGate,
  AuditPublisher,
  ConnectionRegistry,
  createUpstreamConnection,
  DecisionClient,
  EdgePipeline,
  EdgeServer,
  type SessionRecordingOptions,
} from '@portcullis/gateway';
import type { KubeApiServer } from '@portcullis/kube-sandbox';
import { trackProcess, untrackProcess } from '../harness/process-reaper.js';
import { RecordingLog } from './recording-log.js';

/** A running edge. */
export interface TestEdge {
  readonly url: string;
  readonly port: number;
  readonly ca: string;
  readonly token: string;
  readonly log: RecordingLog;
  /** The in-process bus the edge asks policy (and, with `approvals`, the approval gate) on. */
  readonly bus: MessageBus;
  readonly dir: string;
  /** A kubeconfig (bearer token) for `server`, written to a file; `proxyUrl` for host-routed names. */
  kubeconfig(server: string, opts?: { namespace?: string; proxyUrl?: string }): string;
  close(): Promise<void>;
}

/** Options of {@link startTestEdge}. */
export interface TestEdgeOptions {
  readonly connections: Record<string, Pick<KubeApiServer, 'url' | 'caPem' | 'token'>>;
  readonly policy: string;
  readonly upstreamTimeoutMs?: number;
  readonly sessionRecording?: SessionRecordingOptions;
  /** Serve `<connection>.<domain>` too; the dev certificate then covers `*.<domain>`. */
  readonly domain?: string;
  /** Keep decoded copies of appended events for assertions (default true; benches turn it off). */
  readonly keepEvents?: boolean;
  /** `edge.maxRequestBodyBytes` (default: the pipeline's 16 MiB). */
  readonly maxRequestBodyBytes?: number;
  /** Hold require_approval requests at an approval gate on `bus` (the test serves `portcullis.approval.gate`). */
  readonly approvals?: boolean;
}

/** Starts an edge over `connections` with `policy`; the token belongs to client `bot` in group `bots`. */
export async function startTestEdge(opts: TestEdgeOptions): Promise<TestEdge> {
  const dir = mkdtempSync(join(tmpdir(), 'kube-edge-'));
  const handle: BusHandle = createInProcessBus();
  await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 60_000, replicas: 1 });
  const log = new RecordingLog(handle.log, { keep: opts.keepEvents ?? true });
  const parsed = parsePolicy(opts.policy);
  if (!parsed.ok) throw new Error(`bad test policy: ${JSON.stringify(parsed.errors)}`);
  const policy = parsed.policy;
  handle.bus.serve(Subjects.policyDecide(), QueueGroups.policy, (msg) => {
    const req = decodeDecisionRequest(msg.data);
    return encodeDecisionReply(decisionReply({ decision: evaluate(policy, req.identity!, req.attributes!, new Date()) }));
  });
  const hosts = ['127.0.0.1', 'localhost', ...(opts.domain === undefined ? [] : [`*.${opts.domain}`])];
  const tls = await loadOrCreateDevTls(join(dir, 'tls'), hosts);
  const issuer = await DevIssuer.open({
    issuer: 'https://issuer.test/oidc/dev',
    audience: 'portcullis',
    tokenLifetimeMs: 600_000,
    maxTokenLifetimeMs: 3_600_000,
    clients: [{ id: 'bot', secret: 'bot-secret-123', groups: ['bots'], scopes: [] }],
    stateDir: dir,
  });
  const token = (await issuer.issue({ clientId: 'bot', clientSecret: 'bot-secret-123' })).accessToken;
  const registry = new ConnectionRegistry(
    Object.entries(opts.connections).map(([name, f]) => createUpstreamConnection({ name, type: 'kubernetes', server: f.url, caPem: f.caPem, token: f.token })),
  );
  const pipeline = new EdgePipeline({
    nodeId: 'edge-test',
    connections: registry,
    verifier: new TokenVerifier({
      issuers: [{ issuer: issuer.issuer, audiences: ['portcullis'], algorithms: ['ES256'], keys: { jwks: issuer.jwks() } }],
      maxTokenLifetimeMs: 3_600_000,
      clockSkewMs: 5_000,
    }),
    decisions: new DecisionClient(handle.bus, 2_000),
    audit: new AuditPublisher(log, 2_000, silentLogger),
    logger: silentLogger,
    upstreamTimeoutMs: opts.upstreamTimeoutMs ?? 5_000,
    ...(opts.sessionRecording === undefined ? {} : { sessionRecording: opts.sessionRecording }),
    ...(opts.maxRequestBodyBytes === undefined ? {} : { maxRequestBodyBytes: opts.maxRequestBodyBytes }),
    ...(opts.approvals === true ? { approvals: new ApprovalGate({ bus: handle.bus, timeoutMs: 2_000 }) } : {}),
  });
  const domain = opts.domain;
  const host = '127.0.0.1';
  const server = new EdgeServer({
    host,
    port: 0,
    tls,
    pipeline,
    logger: silentLogger,
    hostRouting: domain === undefined ? undefined : { domain, kindOf: (name) => registry.get(name)?.type },
  });
  const bound = await server.listen();
  const url = listenUrl('https', host, bound.port);
  let n = 0;
  return {
    url,
    port: bound.port,
    ca: tls.caPem,
    token,
    log,
    bus: handle.bus,
    dir,
    kubeconfig(serverUrl, kc = {}) {
      const file = join(dir, `kubeconfig-${++n}.yaml`);
      writeFileSync(
        file,
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters:',
          '- name: edge',
          '  cluster:',
          `    server: ${JSON.stringify(serverUrl)}`,
          `    certificate-authority-data: ${Buffer.from(tls.caPem).toString('base64')}`,
          ...(kc.proxyUrl === undefined ? [] : [`    proxy-url: ${JSON.stringify(kc.proxyUrl)}`]),
          'users:',
          '- name: bot',
          '  user:',
          `    token: ${JSON.stringify(token)}`,
          'contexts:',
          '- name: edge',
          '  context:',
          '    cluster: edge',
          '    user: bot',
          `    namespace: ${kc.namespace ?? 'default'}`,
          'current-context: edge',
          '',
        ].join('\n'),
      );
      return file;
    },
    async close() {
      server.closeAll();
      await server.close();
      registry.close();
      await handle.close();
    },
  };
}

/** A long-running kubectl (watch, logs -f, port-forward) whose output can be awaited line by line. */
export interface KubectlProcess {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves with the output once it matches `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Starts kubectl with its own cache dir; stdin can be written through `child.stdin`. */
export function spawnKubectl(kubeconfig: string, cacheDir: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): KubectlProcess {
  const child = spawn('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, ...args], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  trackProcess(child);
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer): void => {
    out += d.toString('utf8');
    for (const w of [...waiters]) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<void>((r) =>
    child.once('exit', () => {
      untrackProcess(child);
      for (const w of [...waiters]) w();
      r();
    }),
  );
  return {
    child,
    output: () => out,
    waitFor(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (pattern.test(out)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(out);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`kubectl ${args.join(' ')} exited before ${pattern}; output:\n${out}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${pattern} from kubectl ${args.join(' ')}; output:\n${out}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
