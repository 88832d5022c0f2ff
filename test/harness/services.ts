/**
 * Real NATS (JetStream), Redis and ClickHouse servers for tests: each on free loopback ports with
 * its own temp dir, killed with the test process. Public surface of the test harness.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { natsAuthorizationConfig, natsUserName, type BusRole } from '@portcullis/contracts';
import { ensureBinaries } from './binaries.js';
import { clickHouseReady, freePort, httpRequest, natsReady, redisReady } from './probes.js';
import { trackDir } from './process-reaper.js';
import { ServerProcess, ServiceStartError } from './server-process.js';
import type { LaunchSpec } from './server-process.js';

export { DEBIAN_PACKAGES, MissingBinaryError, aptInstall, ensureBinaries, findBinary } from './binaries.js';
export type { ServiceBinary } from './binaries.js';
export { ServiceStartError } from './server-process.js';
export { freePort } from './probes.js';

/** Env vars through which `npm test` hands the shared servers to test files. */
export const TEST_ENV = {
  natsUrl: 'PORTCULLIS_TEST_NATS_URL',
  redisUrl: 'PORTCULLIS_TEST_REDIS_URL',
  clickHouseUrl: 'PORTCULLIS_TEST_CLICKHOUSE_URL',
} as const;

/** What every started server offers. */
export interface TestService {
  /** The main (client) port; stable across restarts. */
  readonly port: number;
  /** The temp dir holding config, data and logs (removed when the test process exits). */
  readonly dir: string;
  /** Process id while running. */
  readonly pid: number | undefined;
  /** Milliseconds the last (re)start took until the ready check passed. */
  readonly startMs: number;
  /** Graceful stop (SIGTERM, then SIGKILL after 15 s). Data stays for `restart()`. */
  stop(): Promise<void>;
  /** SIGKILL, like a crash; resolves when the process is gone. */
  kill(): Promise<void>;
  /** Starts again on the same port(s) with the same data dir (stops it first if running). */
  restart(): Promise<void>;
}

/** A NATS user name and password. */
export interface NatsCredentials {
  readonly user: string;
  readonly pass: string;
}

/** A nats-server started by `startNats`. */
export interface TestNats extends TestService {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  /**
   * With `roles`: each role's user (`portcullis-<role>`, a random password), with exactly the
   * permissions of `natsRolePermissions` (@portcullis/contracts). Empty without.
   */
  readonly users: ReadonlyMap<BusRole, NatsCredentials>;
  /** With `roles`: an unrestricted user for test tooling (reading streams, counting); undefined without. */
  readonly admin: NatsCredentials | undefined;
  /** A Portcullis `bus` config section on this server, logged in as `role`'s user when there are users. */
  busConfig(role: BusRole): { mode: 'nats'; nats: { servers: string[]; user?: string; password?: string } };
}

/** A redis-server started by `startRedis` (no persistence). */
export interface TestRedis extends TestService {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
}

/** A clickhouse-server started by `startClickHouse`. */
export interface TestClickHouse extends TestService {
  /** `http://127.0.0.1:<port>` (the HTTP interface, what @clickhouse/client talks to). */
  readonly httpUrl: string;
  /** Native protocol port (clickhouse-client). */
  readonly tcpPort: number;
  /** Runs one statement over HTTP and returns the response body; throws with the server's message. */
  query(sql: string): Promise<string>;
}

/** Options shared by the start functions. */
export interface StartOptions {
  /** How long the first start (and each restart) may take; default 30 s (60 s for ClickHouse). */
  readonly timeoutMs?: number;
  /** Keep config, data and logs in this dir (created; kept at exit) instead of a temp dir. */
  readonly dir?: string;
}

const START_ATTEMPTS = 5;

/**
 * Starts a server on freshly allocated ports, choosing new ports when one was taken in between
 * (the free-port race); returns the ports it got.
 */
async function startOnFreePorts<P>(
  server: ServerProcess,
  allocate: () => Promise<P>,
  launch: (ports: P) => LaunchSpec,
  ready: (ports: P) => Promise<boolean>,
  timeoutMs: number,
): Promise<P> {
  for (let attempt = 1; ; attempt++) {
    const ports = await allocate();
    try {
      await server.start(launch(ports), () => ready(ports), timeoutMs);
      return ports;
    } catch (error) {
      if (!(error instanceof ServiceStartError && error.addressInUse) || attempt >= START_ATTEMPTS) throw error;
    }
  }
}

/** Restarts on the same ports; retries while the port is still taken, up to the deadline. */
async function restartOnSamePorts(server: ServerProcess, spec: LaunchSpec, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  await server.stop();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await server.start(spec, ready, Math.max(1000, deadline - Date.now()));
      return;
    } catch (error) {
      if (!(error instanceof ServiceStartError && error.addressInUse) || Date.now() > deadline) throw error;
    }
  }
}

function makeDir(kind: string, keep?: string): string {
  if (keep !== undefined) {
    mkdirSync(keep, { recursive: true });
    return keep;
  }
  const dir = mkdtempSync(join(tmpdir(), `portcullis-${kind}-`));
  trackDir(dir);
  return dir;
}

// Object.assign keeps the live pid/startMs getters (a spread would freeze their current values).
function serviceHandle<E extends object>(server: ServerProcess, dir: string, port: number, restart: () => Promise<void>, extra: E): TestService & E {
  const base: TestService = {
    port,
    dir,
    get pid() {
      return server.pid;
    },
    get startMs() {
      return server.startMs;
    },
    stop: () => server.stop(),
    kill: () => server.kill(),
    restart,
  };
  return Object.assign(base, extra);
}

/**
 * Starts a nats-server on a free loopback port. With `jetstream` (the default) it runs with
 * JetStream, its store in the temp dir, so streams survive `kill()` + `restart()`; ready means
 * `$JS.API.INFO` answers. With `roles`, clients must log in: one user per role with that role's
 * permissions only (the config deploy/ and the local cluster use), and an unrestricted `admin`.
 */
export async function startNats(options: StartOptions & { readonly jetstream?: boolean; readonly roles?: readonly BusRole[] } = {}): Promise<TestNats> {
  const jetstream = options.jetstream ?? true;
  const users = new Map<BusRole, NatsCredentials>((options.roles ?? []).map((r) => [r, { user: natsUserName(r), pass: randomBytes(12).toString('hex') }]));
  const admin = users.size > 0 ? { user: 'test-admin', pass: randomBytes(12).toString('hex') } : undefined;
  // Permission violations are logged at the default level: a test reads them from the log file.
  const authorization =
    admin === undefined
      ? []
      : [
          natsAuthorizationConfig(
            [...users].map(([role, c]) => ({ user: c.user, password: c.pass, roles: [role] })),
            [`    { user: ${JSON.stringify(admin.user)}, password: ${JSON.stringify(admin.pass)} }`],
          ),
        ];
  const timeoutMs = options.timeoutMs ?? 30_000;
  const { 'nats-server': binary } = await ensureBinaries(['nats-server']);
  const dir = makeDir('nats', options.dir);
  const logFile = join(dir, 'nats-server.log');
  const server = new ServerProcess('nats-server', [logFile]);
  const launch = (port: number): LaunchSpec => {
    const config = join(dir, 'nats-server.conf');
    writeFileSync(
      config,
      [
        `listen: "127.0.0.1:${port}"`,
        `server_name: "portcullis_test_${port}"`,
        ...(jetstream
          ? [`jetstream {`, `  store_dir: ${JSON.stringify(join(dir, 'jetstream'))}`, `  max_memory_store: 256MB`, `  max_file_store: 2GB`, `}`]
          : []),
        ...authorization,
        '',
      ].join('\n'),
    );
    return { command: binary, args: ['-c', config], cwd: dir, logFile };
  };
  const ready = (port: number): Promise<boolean> => natsReady(port, jetstream, admin);
  const port = await startOnFreePorts(server, freePort, launch, ready, timeoutMs);
  return serviceHandle(server, dir, port, () => restartOnSamePorts(server, launch(port), () => ready(port), timeoutMs), {
    url: `nats://127.0.0.1:${port}`,
    users,
    admin,
    busConfig(role: BusRole) {
      const login = users.get(role);
      return {
        mode: 'nats' as const,
        nats: { servers: [`nats://127.0.0.1:${port}`], ...(login === undefined ? {} : { user: login.user, password: login.pass }) },
      };
    },
  });
}

/** Starts a redis-server (no persistence) on a free loopback port; ready means `PING` → `PONG`. */
export async function startRedis(options: StartOptions = {}): Promise<TestRedis> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const { 'redis-server': binary } = await ensureBinaries(['redis-server']);
  const dir = makeDir('redis', options.dir);
  const logFile = join(dir, 'redis-server.log');
  const server = new ServerProcess('redis-server', [logFile]);
  const launch = (port: number): LaunchSpec => ({
    command: binary,
    args: [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--protected-mode',
      'no',
      '--logfile',
      '',
    ],
    cwd: dir,
    logFile,
  });
  const ready = (port: number): Promise<boolean> => redisReady(port);
  const port = await startOnFreePorts(server, freePort, launch, ready, timeoutMs);
  return serviceHandle(server, dir, port, () => restartOnSamePorts(server, launch(port), () => ready(port), timeoutMs), {
    url: `redis://127.0.0.1:${port}`,
  });
}

/** An error response from ClickHouse's HTTP interface. */
export class ClickHouseQueryError extends Error {
  override readonly name = 'ClickHouseQueryError';
  constructor(
    readonly status: number,
    readonly sql: string,
    readonly response: string,
  ) {
    super(`ClickHouse answered ${status} to ${JSON.stringify(sql.slice(0, 200))}: ${response.trim()}`);
  }
}

/**
 * config.xml for one test instance. 18.16 needs little: the ports, the paths and a users file;
 * everything else has a default. No `interserver_http_port` means no replication listener.
 */
function clickHouseConfig(dir: string, httpPort: number, tcpPort: number): string {
  return `<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>${dir}/log/clickhouse-server.log</log>
    <errorlog>${dir}/log/clickhouse-server.err.log</errorlog>
    <size>10M</size>
    <count>1</count>
    <console>0</console>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/user_files/</user_files_path>
  <format_schema_path>${dir}/format_schemas/</format_schema_path>
  <users_config>${dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <keep_alive_timeout>3</keep_alive_timeout>
</yandex>
`;
}

const CLICKHOUSE_USERS = `<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>1000000000</max_memory_usage>
      <background_pool_size>4</background_pool_size>
      <background_schedule_pool_size>4</background_schedule_pool_size>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
`;

/**
 * Starts clickhouse-server in the foreground with a generated config on free loopback HTTP and
 * native ports; ready means `SELECT 1` over HTTP. A failed start throws with the error log's tail.
 */
export async function startClickHouse(options: StartOptions = {}): Promise<TestClickHouse> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const { 'clickhouse-server': binary } = await ensureBinaries(['clickhouse-server']);
  const dir = makeDir('clickhouse', options.dir);
  for (const sub of ['data', 'tmp', 'user_files', 'format_schemas', 'log']) mkdirSync(join(dir, sub));
  writeFileSync(join(dir, 'users.xml'), CLICKHOUSE_USERS);
  const logFile = join(dir, 'log', 'stdout.log');
  const server = new ServerProcess('clickhouse-server', [logFile, join(dir, 'log', 'clickhouse-server.err.log')]);
  type Ports = { readonly http: number; readonly tcp: number };
  const allocate = async (): Promise<Ports> => {
    const http = await freePort();
    let tcp = await freePort();
    while (tcp === http) tcp = await freePort();
    return { http, tcp };
  };
  const launch = (ports: Ports): LaunchSpec => {
    const config = join(dir, 'config.xml');
    writeFileSync(config, clickHouseConfig(dir, ports.http, ports.tcp));
    return { command: binary, args: [`--config-file=${config}`], cwd: dir, logFile };
  };
  const ready = (ports: Ports): Promise<boolean> => clickHouseReady(ports.http);
  const ports = await startOnFreePorts(server, allocate, launch, ready, timeoutMs);
  const httpUrl = `http://127.0.0.1:${ports.http}`;
  const restart = (): Promise<void> => restartOnSamePorts(server, launch(ports), () => ready(ports), timeoutMs);
  return serviceHandle(server, dir, ports.http, restart, {
    httpUrl,
    tcpPort: ports.tcp,
    async query(sql: string): Promise<string> {
      const res = await httpRequest(`${httpUrl}/`, sql, 30_000);
      if (res.status !== 200) throw new ClickHouseQueryError(res.status, sql, res.body);
      return res.body;
    },
  });
}

/** A name unique to this process and call, safe for NATS streams, KV buckets and databases. */
export function uniqueName(prefix: string): string {
  const safe = prefix.replace(/[^A-Za-z0-9_]/g, '_');
  return `${safe}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

let ownNats: Promise<TestNats> | undefined;
let ownRedis: Promise<TestRedis> | undefined;
let ownClickHouse: Promise<TestClickHouse> | undefined;

/**
 * URL of the NATS (JetStream) server shared by this test run (`PORTCULLIS_TEST_NATS_URL`), or of
 * one started for this process when the file runs on its own. Do not kill it: use `startNats`.
 */
export async function sharedNatsUrl(): Promise<string> {
  const fromEnv = process.env[TEST_ENV.natsUrl];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  ownNats ??= startNats();
  return (await ownNats).url;
}

/** URL of the shared Redis (`PORTCULLIS_TEST_REDIS_URL`), or of one started for this process. */
export async function sharedRedisUrl(): Promise<string> {
  const fromEnv = process.env[TEST_ENV.redisUrl];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  ownRedis ??= startRedis();
  return (await ownRedis).url;
}

/** HTTP URL of the shared ClickHouse (`PORTCULLIS_TEST_CLICKHOUSE_URL`), or of one started for this process. */
export async function sharedClickHouseUrl(): Promise<string> {
  const fromEnv = process.env[TEST_ENV.clickHouseUrl];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  ownClickHouse ??= startClickHouse();
  return (await ownClickHouse).httpUrl;
}
