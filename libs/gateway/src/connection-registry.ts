import { readFileSync, statSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { Agent as HttpAgent } from 'node:http';

/** A connection the edge can forward to, with the gateway's own credential for it. */
export interface UpstreamConnection {
  readonly name: string;
  readonly type: 'kubernetes' | 'http';
  readonly url: URL;
  readonly agent: HttpsAgent | HttpAgent;
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
  type: 'kubernetes' | 'http';
  server: string;
  caPem?: string;
  caFile?: string;
  token?: string;
  tokenFile?: string;
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

/** Builds an upstream connection: its keep-alive agent trusts only the configured CA. */
export function createUpstreamConnection(spec: UpstreamConnectionSpec): UpstreamConnection {
  const url = new URL(spec.server);
  const ca = spec.caPem ?? (spec.caFile !== undefined ? readFileSync(spec.caFile, 'utf8') : undefined);
  // noDelay: watch events and exec frames go upstream and back without Nagle's delay.
  const agentOpts = { keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo' as const, noDelay: true };
  const agent =
    url.protocol === 'https:'
      ? new HttpsAgent({ ...agentOpts, ...(ca !== undefined ? { ca } : {}), rejectUnauthorized: spec.insecureSkipTlsVerify !== true })
      : new HttpAgent(agentOpts);
  const credential =
    spec.tokenFile !== undefined
      ? fileCredential(spec.tokenFile)
      : () => spec.token;
  return {
    name: spec.name,
    type: spec.type,
    url,
    agent,
    impersonate: spec.impersonate ?? spec.type === 'kubernetes',
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

  /** Closes idle upstream sockets. */
  close(): void {
    for (const c of this.byName.values()) c.agent.destroy();
  }
}
