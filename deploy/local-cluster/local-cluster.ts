/**
 * A production-shaped Portcullis cluster as processes on this machine: N edges behind nginx (a
 * TLS load balancer), two policy, approval and audit processes, nats-server with JetStream,
 * redis-server and clickhouse-server (the test harness starts them; apt-get installs what is
 * missing when we are root), the Kubernetes API-server fixture as the upstream, and an OTLP/HTTP
 * receiver collecting every role's spans into `traces.jsonl`. Everything lives in `stateDir`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { listenUrl, urlHost } from '@portcullis/common';
import type { BusRole } from '@portcullis/contracts';
import { trackProcess, untrackProcess } from '../../test/harness/process-reaper.js';
import { ensureBinaries, freePort, startClickHouse, startNats, startRedis, type TestService } from '../../test/harness/services.js';

/** Repository root (dist/deploy/local-cluster → ../../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(REPO_ROOT, 'bin', 'portcullis.js');
const SANDBOX = join(REPO_ROOT, 'dist', 'apps', 'sandbox', 'src', 'main.js');
const MARKER = '.portcullis-local-cluster';
/** Where every listener of the local cluster binds; URLs are built from it. */
const HOST = '127.0.0.1';

/** Options of {@link startLocalCluster}. */
export interface LocalClusterOptions {
  /** Everything goes here; wiped at start (only if it is a previous local cluster's or empty). */
  readonly stateDir: string;
  /** Edges behind the load balancer (default 3). */
  readonly edges?: number;
  /** Processes of each other role (default 2). */
  readonly replicas?: number;
  /** The load balancer's port (0 = a free one). */
  readonly lbPort: number;
  /** Progress lines. */
  readonly progress?: (line: string) => void;
}

/** One portcullis process of the cluster. */
export interface ClusterProcess {
  readonly role: string;
  readonly nodeId: string;
  readonly config: string;
  readonly log: string;
  /** `http://127.0.0.1:<port>` serving /metrics, /healthz, /readyz. */
  readonly observabilityUrl: string;
  /** The edge's own HTTPS URL (edges only). */
  readonly url?: string;
  readonly pid: number | undefined;
}

/** A running local cluster. */
export interface LocalCluster {
  /** The load balancer: what clients use. */
  readonly url: string;
  /** The connection name of the upstream (the API-server fixture). */
  readonly connection: string;
  /** A config whose publicUrl is the load balancer (for `portcullis kubeconfig` / `token`). */
  readonly clientConfig: string;
  /** A config logged in as the NATS `operator` user (`portcullis policy push`). */
  readonly operatorConfig: string;
  readonly caFile: string;
  readonly processes: readonly ClusterProcess[];
  readonly natsUrl: string;
  readonly redisUrl: string;
  readonly clickHouseUrl: string;
  readonly clickHouseDatabase: string;
  /** One JSON line per OTLP export request received (`resourceSpans`). */
  readonly tracesFile: string;
  readonly stateDir: string;
  /** Stops everything (portcullis processes first, then nginx, the fixture and the servers). */
  stop(): Promise<void>;
}

const DEV_CLIENTS = [
  { id: 'ci-bot', secret: 'dev-secret-ci-bot', subject: 'ci-bot', groups: ['bots'], scopes: [] },
  { id: 'sre-alice', secret: 'dev-secret-sre-alice', subject: 'alice', groups: ['sre'], scopes: [] },
];

/** Starts the whole cluster; rejects (after stopping what started) if any part fails. */
export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  const progress = opts.progress ?? (() => undefined);
  const edges = opts.edges ?? 3;
  const replicas = opts.replicas ?? 2;
  const stateDir = resolve(opts.stateDir);
  prepareStateDir(stateDir);
  if (!existsSync(SANDBOX)) throw new Error(`${SANDBOX} is missing: build first (npm run build)`);

  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
  };
  try {
    progress('installing/locating nats-server, redis-server, clickhouse-server, nginx');
    const { nginx } = await ensureBinaries(['nats-server', 'redis-server', 'clickhouse-server', 'nginx']);
    progress('starting nats-server (JetStream), redis-server, clickhouse-server');
    const services: TestService[] = [];
    const [nats, redis, clickHouse] = await Promise.all([
      // One NATS user per role (and `operator` for policy push), each with exactly its permissions.
      startNats({ jetstream: true, dir: join(stateDir, 'nats'), roles: ['edge', 'policy', 'approval', 'audit', 'operator'] }),
      startRedis({ dir: join(stateDir, 'redis') }),
      startClickHouse({ dir: join(stateDir, 'clickhouse') }),
    ]);
    services.push(nats, redis, clickHouse);
    stops.push(async () => {
      await Promise.all(services.map((s) => s.stop()));
    });

    progress('starting the Kubernetes API-server fixture (the upstream)');
    const upstreamDir = join(stateDir, 'upstream');
    mkdirSync(upstreamDir, { recursive: true });
    const fixture = spawnLogged(
      process.execPath,
      [SANDBOX, '--cert-dir', upstreamDir, '--token-file', join(upstreamDir, 'token')],
      join(stateDir, 'logs', 'kube-apiserver.log'),
    );
    stops.push(() => stopChild(fixture.child));
    const fixtureInfo = JSON.parse(await fixture.line(/^\{"url"/, 30_000)) as { url: string; ca: string };
    writeFileSync(join(upstreamDir, 'ca.pem'), fixtureInfo.ca);

    const receiver = await startOtlpReceiver(join(stateDir, 'traces.jsonl'));
    stops.push(() => receiver.close());

    const lbPort = opts.lbPort === 0 ? await freePort() : opts.lbPort;
    const lbUrl = listenUrl('https', HOST, lbPort);
    const nodeState = join(stateDir, 'node');
    const policyFile = join(REPO_ROOT, 'examples', 'policy.yaml');
    const config = (role: BusRole, nodeId: string, edgePort: number, obsPort: number, approvalPort: number): Record<string, unknown> => ({
      node: { id: nodeId, stateDir: nodeState },
      edge: { listen: { host: HOST, port: edgePort }, publicUrl: lbUrl, decisionTimeout: '2s', auditAckTimeout: '2s' },
      bus: nats.busConfig(role),
      identity: { devIssuer: { enabled: true, issuerUrl: `${lbUrl}/oidc/dev`, clients: DEV_CLIENTS } },
      connections: [
        { name: 'sandbox', type: 'kubernetes', server: fixtureInfo.url, caFile: join(upstreamDir, 'ca.pem'), tokenFile: join(upstreamDir, 'token') },
      ],
      sandbox: { enabled: 'never' },
      policy: { file: policyFile },
      audit: { sink: 'clickhouse', clickhouse: { url: clickHouse.httpUrl, database: 'portcullis', batchSize: 500, flushInterval: '100ms' } },
      observability: { listen: { host: HOST, port: obsPort }, otlp: { endpoint: receiver.url, sampleRatio: 1 } },
      // Each approval process has its own HTTPS listener (Slack interactions, the approvers' REST API); Redis is shared.
      approval: { listen: { host: HOST, port: approvalPort }, store: 'redis', redis: { url: redis.url } },
    });

    const processes: ClusterProcess[] = [];
    const startRole = async (role: 'edge' | 'policy' | 'approval' | 'audit', nodeId: string): Promise<void> => {
      const [edgePort, obsPort, approvalPort] = [role === 'edge' ? await freePort() : 8443, await freePort(), await freePort()];
      const file = join(stateDir, `${nodeId}.yaml`);
      writeFileSync(file, stringify(config(role, nodeId, edgePort, obsPort, approvalPort)), { mode: 0o600 });
      const log = join(stateDir, 'logs', `${nodeId}.log`);
      const p = spawnLogged(process.execPath, [CLI, 'serve', role, '--config', file], log);
      stops.push(() => stopChild(p.child));
      const ready = JSON.parse(await p.line(/"ready":true/, 60_000)) as { url?: string };
      processes.push({
        role,
        nodeId,
        config: file,
        log,
        observabilityUrl: listenUrl('http', HOST, obsPort),
        ...(ready.url !== undefined ? { url: listenUrl('https', HOST, edgePort) } : {}),
        pid: p.child.pid,
      });
    };
    const backends = (['policy', 'approval', 'audit'] as const).flatMap((role) =>
      Array.from({ length: replicas }, (_, i) => [role, `${role}-${i + 1}`] as const),
    );
    progress(`starting ${backends.map(([, id]) => id).join(', ')}`);
    await Promise.all(backends.map(([role, id]) => startRole(role, id)));
    // The first edge creates the development CA and the token issuer's key the others share.
    progress(`starting edge-1 … edge-${edges}`);
    await startRole('edge', 'edge-1');
    await Promise.all(Array.from({ length: edges - 1 }, (_, i) => startRole('edge', `edge-${i + 2}`)));

    progress(`starting nginx on ${lbUrl}`);
    const caFile = join(nodeState, 'tls', 'ca.pem');
    const nginxDir = join(stateDir, 'nginx');
    const nginxConf = writeNginxConfig(
      nginxDir,
      lbPort,
      processes.filter((p) => p.role === 'edge').map((p) => p.url!),
      nodeState,
    );
    const lb = spawnLogged(nginx, ['-p', nginxDir, '-c', nginxConf, '-e', join(nginxDir, 'error.log')], join(stateDir, 'logs', 'nginx.log'));
    stops.push(() => stopChild(lb.child));
    await waitForHttps(`${lbUrl}/healthz`, readFileSync(caFile, 'utf8'), 20_000, lb.child);

    // The config `portcullis policy push` / `policy explain` use: the operator's NATS user.
    const operatorConfig = join(stateDir, 'operator.yaml');
    const { observability: _unused, ...operator } = config('operator', 'operator', 8443, 9464, 8444);
    writeFileSync(operatorConfig, stringify(operator), { mode: 0o600 });

    return {
      url: lbUrl,
      connection: 'sandbox',
      clientConfig: processes.find((p) => p.nodeId === 'edge-1')!.config,
      operatorConfig,
      caFile,
      processes,
      natsUrl: nats.url,
      redisUrl: redis.url,
      clickHouseUrl: clickHouse.httpUrl,
      clickHouseDatabase: 'portcullis',
      tracesFile: receiver.file,
      stateDir,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Wipes a previous run's state; refuses a non-empty directory that is not ours. */
function prepareStateDir(dir: string): void {
  if (existsSync(dir)) {
    if (!existsSync(join(dir, MARKER)) && readdirSync(dir).length > 0) {
      throw new Error(`${dir} exists and was not made by the local cluster: choose another --state-dir`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(join(dir, 'logs'), { recursive: true });
  writeFileSync(join(dir, MARKER), 'state of `npm run cluster`; wiped at every start\n');
}

/** A child whose stdout and stderr go to a log file, with a way to wait for a stdout line. */
function spawnLogged(
  command: string,
  args: readonly string[],
  logFile: string,
): { child: ChildProcess; line: (pattern: RegExp, timeoutMs: number) => Promise<string> } {
  mkdirSync(dirname(logFile), { recursive: true });
  const out = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(command, [...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PORTCULLIS_LOG_LEVEL: process.env['PORTCULLIS_LOG_LEVEL'] ?? 'info' },
  });
  trackProcess(child);
  child.once('exit', () => untrackProcess(child));
  let text = '';
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  const onData = (chunk: Buffer): void => {
    out.write(chunk);
    text += chunk.toString('utf8');
    if (text.length > 1_000_000) text = text.slice(-100_000);
    for (const w of [...waiters]) {
      const m = text.split('\n').find((l) => w.pattern.test(l));
      if (m !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  child.once('exit', () => out.end());
  return {
    child,
    line: (pattern, timeoutMs) =>
      new Promise((resolveLine, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${command} ${args.join(' ')}: no line matching ${pattern} within ${timeoutMs} ms; see ${logFile}\n${text.slice(-3000)}`)),
          timeoutMs,
        );
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`${command} ${args.join(' ')} exited (${code}) before ${pattern}; see ${logFile}\n${text.slice(-3000)}`));
        });
        waiters.push({
          pattern,
          resolve: (l) => {
            clearTimeout(timer);
            resolveLine(l);
          },
        });
        onData(Buffer.alloc(0));
      }),
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * nginx as the TLS load balancer: HTTP/1.1 proxying with upstream keep-alive, round robin over
 * the edges, the edges' certificate verified against the development CA, no buffering (watches,
 * logs -f), Upgrade passed through (exec, port-forward). One process (`master_process off`), so a
 * SIGKILL leaves no worker behind.
 */
function writeNginxConfig(dir: string, port: number, edgeUrls: readonly string[], nodeState: string): string {
  for (const sub of ['tmp', 'logs']) mkdirSync(join(dir, sub), { recursive: true });
  const tls = join(nodeState, 'tls');
  const conf = join(dir, 'nginx.conf');
  const servers = edgeUrls.map((u) => `    server ${new URL(u).host} max_fails=1 fail_timeout=5s;`).join('\n');
  writeFileSync(
    conf,
    `# Generated by npm run cluster.
daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log ${join(dir, 'access.log')};
  client_body_temp_path ${join(dir, 'tmp', 'body')};
  proxy_temp_path ${join(dir, 'tmp', 'proxy')};
  fastcgi_temp_path ${join(dir, 'tmp', 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp', 'uwsgi')};
  scgi_temp_path ${join(dir, 'tmp', 'scgi')};
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream portcullis_edges {
${servers}
    keepalive 32;
  }
  server {
    listen ${urlHost(HOST)}:${port} ssl;
    ssl_certificate ${join(tls, 'server.pem')};
    ssl_certificate_key ${join(tls, 'server-key.pem')};
    client_max_body_size 16m;
    location / {
      proxy_pass https://portcullis_edges;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_ssl_trusted_certificate ${join(tls, 'ca.pem')};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 1h;
      proxy_next_upstream error timeout;
    }
  }
}
`,
  );
  return conf;
}

async function waitForHttps(url: string, ca: string, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the load balancer exited (${child.exitCode}) during start-up`);
    const ok = await new Promise<boolean>((r) => {
      const req = httpsRequest(url, { ca, timeout: 2000 }, (res) => {
        res.resume();
        r(res.statusCode === 200);
      });
      req.on('error', () => r(false));
      req.on('timeout', () => req.destroy());
      req.end();
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A minimal OTLP/HTTP (JSON) trace receiver: every export request becomes one line of a file. */
export async function startOtlpReceiver(file: string): Promise<{ url: string; file: string; close(): Promise<void> }> {
  writeFileSync(file, '');
  let pending = Promise.resolve();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).includes('json')) {
        res.writeHead(415, { 'content-type': 'application/json' }).end('{}');
        return;
      }
      // Appended in arrival order, one export per line.
      pending = pending.then(() => appendFile(file, `${JSON.stringify(JSON.parse(body))}\n`)).catch(() => undefined);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, HOST, () => r()));
  const bound = server.address() as AddressInfo;
  return {
    url: listenUrl('http', bound.address, bound.port),
    file,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await pending;
    },
  };
}
