import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Agent as HttpsAgent } from 'node:https';
import { Agent as HttpAgent } from 'node:http';
import { Pool } from 'undici';
import { urlHost } from '@portcullis/common';
import { ConnectionKind } from './connection-kind.js';

/** A connection the edge can forward to, with the gateway's own credential for it. */
export interface UpstreamConnection {
  readonly name: string;
  readonly type: ConnectionKind;
  readonly url: URL;
  /** The server URL's path without its trailing slash: prefixed to every upstream path. */
  readonly basePath: string;
  /** Upgrades (exec, attach, port-forward, WebSocket) go through node:http with this agent. */
  readonly agent: HttpsAgent | HttpAgent;
  /**
   * Plain requests go through this undici pool: measured here, node:http's client costs ~40 µs more
   * CPU per proxied request than undici (a third of a bare proxy's whole cost).
   */
  readonly pool: Pool;
  readonly impersonate: boolean;
  readonly impersonationPrefix: string;
  /** The gateway's bearer credential for the upstream (re-read when its file changes); never sent to clients. */
  credential(): string | undefined;
  /** A label for logs and the startup banner (e.g. "sandbox"). */
  readonly label?: string;
}

/** How to build one connection. */
export interface UpstreamConnectionSpec {
  name: string;
  type: ConnectionKind;
  server: string;
  caPem?: string;
  caFile?: string;
  token?: string;
  tokenFile?: string;
  /** Client certificate and key (PEM files) for mTLS to the upstream; read at start-up. */
  clientCertFile?: string;
  clientKeyFile?: string;
  /** Or the PEMs themselves (tests, the embedded sandbox). */
  clientCertPem?: string;
  clientKeyPem?: string;
  insecureSkipTlsVerify?: boolean;
  impersonate?: boolean;
  impersonationPrefix?: string;
  label?: string;
}

const TOKEN_RECHECK_MS = 5_000;

/** A bearer token read from a file and re-read when the file changes (projected tokens rotate). */
function fileCredential(file: string): () => string {
  let value = readFileSync(file, 'utf8').trim();
  let mtime = statSync(file).mtimeMs;
  let checkedAt = Date.now();
  return () => {
    const now = Date.now();
    if (now - checkedAt > TOKEN_RECHECK_MS) {
      checkedAt = now;
      try {
        const m = statSync(file).mtimeMs;
        if (m !== mtime) {
          value = readFileSync(file, 'utf8').trim();
          mtime = m;
        }
      } catch {
        // Keep the last good token: a rotating writer may be between unlink and rename.
      }
    }
    return value;
  };
}

/** The default directory of a pod's service-account token and CA. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Why an in-cluster connection cannot be built. */
export class InClusterConfigError extends Error {
  override readonly name = 'InClusterConfigError';
}

/**
 * The in-cluster service account as client-go's rest.InClusterConfig reads it: the API server
 * from KUBERNETES_SERVICE_HOST/PORT, the token (re-read as it rotates) and CA from `dir`.
 */
export function inClusterCredential(
  dir: string = SERVICE_ACCOUNT_DIR,
  env: NodeJS.ProcessEnv = process.env,
): { server: string; tokenFile: string; caFile: string } {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (!host || !port) throw new InClusterConfigError('inCluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not running in a pod?)');
  const tokenFile = join(dir, 'token');
  const caFile = join(dir, 'ca.crt');
  for (const f of [tokenFile, caFile]) {
    if (!existsSync(f)) throw new InClusterConfigError(`inCluster: ${f} does not exist (is the service-account token mounted?)`);
  }
  return { server: `https://${urlHost(host)}:${port}`, tokenFile, caFile };
}

/** Builds an upstream connection: its keep-alive agent trusts only the configured CA. */
export function createUpstreamConnection(spec: UpstreamConnectionSpec): UpstreamConnection {
  const url = new URL(spec.server);
  const ca = spec.caPem ?? (spec.caFile !== undefined ? readFileSync(spec.caFile, 'utf8') : undefined);
  const cert = spec.clientCertPem ?? (spec.clientCertFile !== undefined ? readFileSync(spec.clientCertFile, 'utf8') : undefined);
  const key = spec.clientKeyPem ?? (spec.clientKeyFile !== undefined ? readFileSync(spec.clientKeyFile, 'utf8') : undefined);
  if ((cert === undefined) !== (key === undefined)) throw new TypeError(`connection ${spec.name}: a client certificate needs its key and the other way round`);
  // noDelay: watch events and exec frames go upstream and back without Nagle's delay.
  const agentOpts = { keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo' as const, noDelay: true };
  const agent =
    url.protocol === 'https:'
      ? new HttpsAgent({
          ...agentOpts,
          ...(ca !== undefined ? { ca } : {}),
          ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
          rejectUnauthorized: spec.insecureSkipTlsVerify !== true,
        })
      : new HttpAgent(agentOpts);
  const pool = new Pool(url.origin, {
    connections: 256,
    pipelining: 1,
    // Watches and logs -f may be silent for minutes: the edge's own timers decide, not undici's.
    // (undici sets TCP_NODELAY on its sockets itself.)
    bodyTimeout: 0,
    headersTimeout: 0,
    keepAliveTimeout: 60_000,
    ...(url.protocol === 'https:'
      ? {
          connect: {
            ...(ca !== undefined ? { ca } : {}),
            ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
            rejectUnauthorized: spec.insecureSkipTlsVerify !== true,
          },
        }
      : {}),
  });
  const credential = spec.tokenFile !== undefined ? fileCredential(spec.tokenFile) : () => spec.token;
  return {
    name: spec.name,
    type: spec.type,
    url,
    basePath: url.pathname.replace(/\/$/, ''),
    agent,
    pool,
    impersonate: spec.impersonate ?? spec.type === ConnectionKind.Kubernetes,
    impersonationPrefix: spec.impersonationPrefix ?? 'portcullis:',
    credential,
    ...(spec.label !== undefined ? { label: spec.label } : {}),
  };
}

/** The connections of one edge, by name. */
export class ConnectionRegistry {
  private readonly byName = new Map<string, UpstreamConnection>();

  constructor(connections: readonly UpstreamConnection[]) {
    for (const c of connections) this.byName.set(c.name, c);
  }

  get(name: string): UpstreamConnection | undefined {
    return this.byName.get(name);
  }

  list(): UpstreamConnection[] {
    return [...this.byName.values()];
  }

  /** Closes the upstream sockets. */
  close(): void {
    for (const c of this.byName.values()) {
      c.agent.destroy();
      void c.pool.destroy().catch(() => undefined);
    }
  }
}
