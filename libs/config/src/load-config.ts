import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigSchema, type ConfigInput } from './config.schema.js';

/** The validated, frozen configuration every role receives. Paths are absolute. */
export type PortcullisConfig = DeepReadonly<ConfigInput & { node: { id: string }; configDir: string; policy: { source: PolicySource } }>;

/**
 * Where policy processes take the policy from. `kv`: the NATS KV bucket (cluster mode's
 * default; the file is used only while the bucket is empty); `file`: the file, reloaded when it
 * changes (the embedded mode, and a cluster that manages policy files itself).
 */
export type PolicySource = 'kv' | 'file';

type DeepReadonly<T> = T extends (infer U)[] ? readonly DeepReadonly<U>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

/** Configuration that cannot be used: the message names the key, the value and what was expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly problems: readonly string[] = [],
  ) {
    super(message);
  }
}

/** Reads, expands `${ENV}` references, validates and freezes a configuration file. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): PortcullisConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(`cannot read config file ${file}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (cause) {
    throw new ConfigError(`config file ${file} is not valid YAML: ${(cause as Error).message}`);
  }
  return parseConfig(raw, { configDir: dirname(resolve(file)), env, source: file });
}

/** Validates an already-parsed configuration object. */
export function parseConfig(raw: unknown, opts: { configDir: string; env?: NodeJS.ProcessEnv; source?: string }): PortcullisConfig {
  const source = opts.source ?? 'config';
  const problems: string[] = [];
  const expanded = expandEnv(raw, opts.env ?? process.env, [], problems);
  if (problems.length > 0) throw new ConfigError(`${source}: ${problems.join('; ')}`, problems);
  const result = ConfigSchema.safeParse(expanded, { reportInput: true });
  if (!result.success) {
    const lines = result.error.issues.map(describeIssue);
    throw new ConfigError(`${source} is invalid:\n  - ${lines.join('\n  - ')}`, lines);
  }
  const cfg = result.data;
  const names = new Set<string>();
  for (const c of cfg.connections) {
    if (names.has(c.name)) problems.push(`connections: the name ${JSON.stringify(c.name)} is used twice`);
    names.add(c.name);
  }
  if (cfg.policy.source === 'kv' && cfg.bus.mode !== 'nats') {
    problems.push('policy.source: "kv" needs bus.mode: nats (the embedded mode reads policy.file), got "kv"');
  }
  if (problems.length > 0) throw new ConfigError(`${source} is invalid:\n  - ${problems.join('\n  - ')}`, problems);

  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(opts.configDir, p));
  const stateDir = abs(cfg.node.stateDir);
  const out = {
    ...cfg,
    configDir: opts.configDir,
    node: { id: cfg.node.id ?? `${hostname()}-${process.pid}`, stateDir },
    edge: {
      ...cfg.edge,
      tls: {
        ...(cfg.edge.tls.certFile !== undefined ? { certFile: abs(cfg.edge.tls.certFile) } : {}),
        ...(cfg.edge.tls.keyFile !== undefined ? { keyFile: abs(cfg.edge.tls.keyFile) } : {}),
        ...(cfg.edge.tls.caBundleFile !== undefined ? { caBundleFile: abs(cfg.edge.tls.caBundleFile) } : {}),
      },
    },
    connections: cfg.connections.map((c) => ({
      ...c,
      ...(c.caFile !== undefined ? { caFile: abs(c.caFile) } : {}),
      ...(c.tokenFile !== undefined ? { tokenFile: abs(c.tokenFile) } : {}),
      ...(c.clientCertFile !== undefined ? { clientCertFile: abs(c.clientCertFile) } : {}),
      ...(c.clientKeyFile !== undefined ? { clientKeyFile: abs(c.clientKeyFile) } : {}),
      ...(c.type === 'kubernetes' ? { serviceAccountDir: abs(c.serviceAccountDir) } : {}),
    })),
    identity: {
      ...cfg.identity,
      issuers: cfg.identity.issuers.map((i) => ({ ...i, ...(i.caFile !== undefined ? { caFile: abs(i.caFile) } : {}) })),
    },
    policy: { file: abs(cfg.policy.file), source: cfg.policy.source ?? (cfg.bus.mode === 'nats' ? 'kv' : 'file') },
    audit: {
      ...cfg.audit,
      sqlite: { file: isAbsolute(cfg.audit.sqlite.file) ? cfg.audit.sqlite.file : resolve(stateDir, cfg.audit.sqlite.file) },
      checkpoints: {
        ...cfg.audit.checkpoints,
        signingKeyFile: resolve(stateDir, cfg.audit.checkpoints.signingKeyFile),
        file: resolve(stateDir, cfg.audit.checkpoints.file),
        publicKeys: cfg.audit.checkpoints.publicKeys.map(abs),
      },
    },
  };
  return deepFreeze(out);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    return `${path}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} (see portcullis.example.yaml for every key)`;
  }
  const got = 'input' in issue && issue.input !== undefined ? `, got ${safeValue(path, issue.input)}` : '';
  return `${path}: ${issue.message}${got}`;
}

const SECRET_KEY = /secret|password|token/i;

/** Never echo a secret-looking value back into an error message. */
function safeValue(path: string, value: unknown): string {
  if (SECRET_KEY.test(path)) return '(hidden)';
  // An object can carry a secret under its own keys, e.g. `clients:` given a map instead of a list.
  const text = JSON.stringify(redactSecrets(value));
  return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) ? '(hidden)' : redactSecrets(v)]));
  }
  return value;
}

const ENV_REF = /\$\{([A-Z_][A-Z0-9_]*)\}/g;

function expandEnv(value: unknown, env: NodeJS.ProcessEnv, path: string[], problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_m, name: string) => {
      const v = env[name];
      if (v === undefined) {
        problems.push(`${path.join('.')}: environment variable ${name} is not set`);
        return '';
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, [...path, String(i)], problems));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, [...path, k], problems)]));
  }
  return value;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
