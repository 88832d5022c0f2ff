import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError, loadConfigFile, parseConfig, type PortcullisConfig } from '@portcullis/config';

/** Repository root (tests run from dist/test/unit). */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const configDir = '/etc/portcullis';
const tmp = mkdtempSync(join(tmpdir(), 'portcullis-config-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function parse(raw: unknown, env: NodeJS.ProcessEnv = {}): PortcullisConfig {
  return parseConfig(raw, { configDir, env, source: 'test.yaml' });
}

/** Parses a config that must be refused and returns the error. */
function refused(raw: unknown, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parse(raw, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(raw)} to be refused`);
}

function writeTmp(name: string, text: string): string {
  const file = join(tmp, name);
  writeFileSync(file, text);
  return file;
}

const kube = (extra: Record<string, unknown> = {}) => ({ name: 'prod', type: 'kubernetes', server: 'https://10.0.0.1:6443', ...extra });

describe('parseConfig: defaults and freezing', () => {
  test('an empty config gets every default', () => {
    const cfg = parse({});
    assert.equal(cfg.configDir, configDir);
    assert.equal(cfg.node.stateDir, '/etc/portcullis/.portcullis');
    assert.match(cfg.node.id, /^.+-\d+$/, 'node id defaults to <hostname>-<pid>');
    assert.deepEqual(cfg.edge.listen, { host: '127.0.0.1', port: 8443 });
    assert.deepEqual(cfg.edge.tls, {});
    assert.equal(cfg.edge.decisionTimeout, 2000);
    assert.equal(cfg.edge.auditAckTimeout, 2000);
    assert.equal(cfg.edge.upstreamTimeout, 60_000);
    assert.equal(cfg.edge.maxRequestBodyBytes, 16 * 1024 * 1024);
    assert.equal(cfg.edge.domain, undefined);
    assert.deepEqual(cfg.edge.sessionRecording, { maxBytes: 1024 * 1024, flushInterval: 200, flushBytes: 64 * 1024 });
    assert.deepEqual(Object.keys(cfg.masking.profiles), ['secrets']);
    assert.equal(cfg.masking.profiles['secrets']?.replacement, 'marker');
    assert.equal(cfg.masking.auditProfile, 'secrets');
    assert.equal(cfg.masking.maxObjectBytes, 16 * 1024 * 1024);
    assert.equal(cfg.masking.requestCaptureBytes, 1024 * 1024);
    assert.equal(cfg.masking.excerptBytes, 8192);
    assert.equal(cfg.bus.mode, 'embedded');
    assert.deepEqual(cfg.bus.nats.servers, ['nats://127.0.0.1:4222']);
    assert.deepEqual(cfg.bus.auditStream, { maxAge: 30 * 86_400_000, duplicateWindow: 120_000, replicas: 1 });
    assert.equal(cfg.identity.maxTokenLifetime, 3_600_000);
    assert.equal(cfg.identity.clockSkew, 30_000);
    assert.deepEqual(cfg.identity.issuers, []);
    assert.equal(cfg.identity.devIssuer.enabled, false);
    assert.equal(cfg.identity.devIssuer.tokenLifetime, 300_000);
    assert.deepEqual(cfg.connections, []);
    assert.equal(cfg.sandbox.enabled, 'auto');
    assert.equal(cfg.policy.file, '/etc/portcullis/examples/policy.yaml');
    assert.equal(cfg.audit.sink, 'sqlite');
    assert.equal(cfg.audit.sqlite.file, '/etc/portcullis/.portcullis/audit.db');
    assert.equal(cfg.audit.clickhouse.flushInterval, 200);
  });

  test('nested defaults fill in around given values', () => {
    const cfg = parse({
      edge: { listen: { port: 9000 } },
      connections: [kube()],
      identity: { issuers: [{ issuer: 'https://idp.example.com', audiences: ['portcullis'] }] },
    });
    assert.deepEqual(cfg.edge.listen, { host: '127.0.0.1', port: 9000 });
    const conn = cfg.connections[0];
    assert.ok(conn !== undefined && conn.type === 'kubernetes');
    assert.equal(conn.impersonate, true);
    assert.equal(conn.impersonationPrefix, 'portcullis:');
    assert.equal(conn.insecureSkipTlsVerify, false);
    assert.deepEqual(cfg.identity.issuers[0]?.algorithms, ['RS256', 'PS256', 'ES256', 'EdDSA']);
    assert.equal(cfg.identity.issuers[0]?.subjectClaim, 'sub');
  });

  test('identity and credential keys: required claims, JWKS timings, audiences, mTLS files, in-cluster', () => {
    const cfg = parse({
      connections: [
        kube({ audiences: ['prod-gw'], clientCertFile: 'certs/c.pem', clientKeyFile: 'certs/k.pem' }),
        { name: 'incluster', type: 'kubernetes', inCluster: true, serviceAccountDir: 'sa' },
      ],
      identity: {
        issuers: [
          {
            issuer: 'https://token.actions.githubusercontent.com',
            audiences: ['portcullis'],
            caFile: 'idp-ca.pem',
            requiredClaims: { repository: 'acme/deploy', ref: ['refs/heads/main'] },
            jwksRefetchCooldown: '10s',
          },
        ],
      },
    });
    const i = cfg.identity.issuers[0];
    assert.deepEqual(i?.requiredClaims, { repository: 'acme/deploy', ref: ['refs/heads/main'] });
    assert.equal(i?.jwksCacheLifetime, 600_000);
    assert.equal(i?.jwksRefetchCooldown, 10_000);
    assert.equal(i?.caFile, '/etc/portcullis/idp-ca.pem');
    const [a, b] = cfg.connections;
    assert.deepEqual(a?.audiences, ['prod-gw']);
    assert.equal(a?.clientCertFile, '/etc/portcullis/certs/c.pem');
    assert.equal(a?.clientKeyFile, '/etc/portcullis/certs/k.pem');
    assert.ok(b?.type === 'kubernetes');
    assert.equal(b.inCluster, true);
    assert.equal(b.server, undefined);
    assert.equal(b.serviceAccountDir, '/etc/portcullis/sa');
    const c = parse({ connections: [kube()] }).connections[0];
    assert.ok(c?.type === 'kubernetes');
    assert.equal(c.serviceAccountDir, '/var/run/secrets/kubernetes.io/serviceaccount');
  });

  test('durations are parsed into milliseconds', () => {
    const cfg = parse({
      edge: { decisionTimeout: '500ms', upstreamTimeout: '5m', headersTimeout: '1m30s' },
      bus: { auditStream: { maxAge: '7d' } },
      identity: { clockSkew: '1h' },
    });
    assert.equal(cfg.edge.decisionTimeout, 500);
    assert.equal(cfg.edge.headersTimeout, 90_000, 'compound durations, as in policies');
    assert.equal(cfg.edge.upstreamTimeout, 300_000);
    assert.equal(cfg.bus.auditStream.maxAge, 7 * 86_400_000);
    assert.equal(cfg.identity.clockSkew, 3_600_000);
  });

  test('the result is deeply frozen', () => {
    const cfg = parse({ connections: [kube()], identity: { devIssuer: { clients: [{ id: 'a', secret: 'long-enough', groups: ['g'] }] } } });
    const objects: unknown[] = [
      cfg,
      cfg.edge,
      cfg.edge.listen,
      cfg.edge.tls,
      cfg.bus.nats.servers,
      cfg.connections,
      cfg.connections[0],
      cfg.identity.devIssuer.clients[0],
      cfg.identity.devIssuer.clients[0]?.groups,
      cfg.audit.sqlite,
    ];
    for (const o of objects) assert.ok(Object.isFrozen(o), `not frozen: ${JSON.stringify(o)}`);
    assert.throws(() => {
      (cfg.edge.listen as { port: number }).port = 1;
    }, TypeError);
    assert.throws(() => {
      (cfg.connections as unknown[]).push(kube({ name: 'x' }));
    }, TypeError);
    assert.throws(() => {
      (cfg.identity.devIssuer.clients[0]?.groups as string[]).push('system:masters');
    }, TypeError);
    assert.equal(cfg.edge.listen.port, 8443);
  });

  test('the raw input is not mutated or frozen', () => {
    const raw = { edge: { listen: { port: 1234 } } };
    parse(raw);
    assert.deepEqual(raw, { edge: { listen: { port: 1234 } } });
    assert.equal(Object.isFrozen(raw.edge), false);
  });
});

describe('parseConfig: relative paths', () => {
  test('are resolved against the config dir; the audit file against the state dir', () => {
    const cfg = parse({
      node: { stateDir: 'state' },
      edge: { tls: { certFile: 'tls/cert.pem', keyFile: '../keys/key.pem' } },
      connections: [
        kube({ caFile: 'ca/prod.pem', tokenFile: 'tokens/prod' }),
        { name: 'billing', type: 'http', server: 'https://billing.internal', caFile: 'billing-ca.pem' },
      ],
      policy: { file: 'policies/main.yaml' },
      audit: { sqlite: { file: 'db/audit.db' } },
    });
    assert.equal(cfg.node.stateDir, '/etc/portcullis/state');
    assert.deepEqual(cfg.edge.tls, { certFile: '/etc/portcullis/tls/cert.pem', keyFile: '/etc/keys/key.pem' });
    assert.equal(cfg.connections[0]?.caFile, '/etc/portcullis/ca/prod.pem');
    assert.equal(cfg.connections[0]?.tokenFile, '/etc/portcullis/tokens/prod');
    assert.equal(cfg.connections[1]?.caFile, '/etc/portcullis/billing-ca.pem');
    assert.equal(cfg.connections[1]?.tokenFile, undefined);
    assert.equal(cfg.policy.file, '/etc/portcullis/policies/main.yaml');
    assert.equal(cfg.audit.sqlite.file, '/etc/portcullis/state/db/audit.db');
  });

  test('absolute paths are kept', () => {
    const cfg = parse({
      node: { stateDir: '/var/lib/portcullis' },
      connections: [kube({ caFile: '/etc/ca.pem', tokenFile: '/run/token' })],
      policy: { file: '/srv/policy.yaml' },
      audit: { sqlite: { file: '/data/audit.db' } },
    });
    assert.equal(cfg.node.stateDir, '/var/lib/portcullis');
    assert.equal(cfg.connections[0]?.caFile, '/etc/ca.pem');
    assert.equal(cfg.connections[0]?.tokenFile, '/run/token');
    assert.equal(cfg.policy.file, '/srv/policy.yaml');
    assert.equal(cfg.audit.sqlite.file, '/data/audit.db');
  });
});

interface BadConfig {
  readonly name: string;
  readonly raw: unknown;
  /** Every fragment must appear in the message: the key path, the bad value, what was expected. */
  readonly says: readonly (string | RegExp)[];
}

const BAD_CONFIGS: readonly BadConfig[] = [
  {
    name: 'edge.hostNames: a name with a port',
    raw: { edge: { hostNames: ['lb.example.com:443'] } },
    says: ['edge.hostNames.0', 'without a port'],
  },
  {
    name: 'edge.hostNames: an upper-case name',
    raw: { edge: { hostNames: ['LB.example.com'] } },
    says: ['edge.hostNames.0', 'lower-case DNS name'],
  },
  {
    name: 'masking: unknown detector',
    raw: { masking: { profiles: { strict: { detectors: ['jwt', 'ssn'] } }, auditProfile: 'strict' } },
    says: ['masking.profiles.strict.detectors.1', 'got "ssn"'],
  },
  {
    name: 'masking: unsupported JSON path',
    raw: { masking: { profiles: { strict: { jsonPaths: ['$.a[?(@.x)]'] } }, auditProfile: 'strict' } },
    says: ['masking.profiles.strict.jsonPaths.0', 'unsupported selector'],
  },
  {
    name: 'masking: audit profile not configured',
    raw: { masking: { profiles: { strict: {} } } },
    says: ['masking.auditProfile', 'must name one of masking.profiles'],
  },
  {
    name: 'masking: hmac without a key',
    raw: { masking: { profiles: { strict: { replacement: 'hmac' } }, auditProfile: 'strict' } },
    says: ['masking.hmacKey', 'replacement hmac'],
  },
  {
    name: 'masking: unknown profile key',
    raw: { masking: { profiles: { strict: { detector: [] } }, auditProfile: 'strict' } },
    says: ['masking.profiles.strict', 'unknown key "detector"'],
  },
  { name: 'slack enabled without its secrets', raw: { approval: { slack: { enabled: true } } }, says: ['approval.slack', 'botToken and signingSecret'] },
  {
    name: 'slack user with neither id nor email',
    raw: { approval: { slack: { users: [{ subject: 'alice' }] } } },
    says: ['approval.slack.users.0', 'exactly one of slackUserId or email'],
  },
  {
    name: 'slack user id that is not one',
    raw: { approval: { slack: { users: [{ slackUserId: 'alice', subject: 'alice' }] } } },
    says: ['approval.slack.users.0.slackUserId', 'got "alice"'],
  },
  { name: 'approval redis URL of another scheme', raw: { approval: { redis: { url: 'http://127.0.0.1:6379' } } }, says: ['approval.redis.url', 'redis://'] },
  { name: 'approval pendingTtl not a duration', raw: { approval: { pendingTtl: 'forever' } }, says: ['approval.pendingTtl', 'got "forever"'] },
  { name: 'approval store unknown', raw: { approval: { store: 'postgres' } }, says: ['approval.store', 'got "postgres"'] },
  { name: 'unknown top-level key', raw: { edges: {} }, says: ['(top level)', 'unknown key "edges"', 'portcullis.example.yaml'] },
  { name: 'edge.domain with upper case and a leading dot', raw: { edge: { domain: '.Portcullis.Example' } }, says: ['edge.domain', 'DNS name'] },
  { name: 'negative session recording cap', raw: { edge: { sessionRecording: { maxBytes: -1 } } }, says: ['edge.sessionRecording.maxBytes'] },
  { name: 'unknown nested key', raw: { edge: { listn: { port: 1 } } }, says: ['edge:', 'unknown key "listn"'] },
  { name: 'unknown key in a list item', raw: { connections: [kube({ sever: 'x' })] }, says: ['connections.0:', 'unknown key "sever"'] },
  { name: 'port of the wrong type', raw: { edge: { listen: { port: 'abc' } } }, says: ['edge.listen.port', /expected number/, 'got "abc"'] },
  { name: 'port out of range', raw: { edge: { listen: { port: 70000 } } }, says: ['edge.listen.port', /65535/, 'got 70000'] },
  { name: 'negative port', raw: { edge: { listen: { port: -1 } } }, says: ['edge.listen.port', />=0/, 'got -1'] },
  { name: 'fractional port', raw: { edge: { listen: { port: 80.5 } } }, says: ['edge.listen.port', /int/, 'got 80.5'] },
  {
    name: 'bad duration',
    raw: { edge: { decisionTimeout: '5 minutes' } },
    says: ['edge.decisionTimeout', 'expected a duration such as 500ms', 'got "5 minutes"'],
  },
  { name: 'duration without unit', raw: { identity: { clockSkew: '30' } }, says: ['identity.clockSkew', 'expected a duration', 'got "30"'] },
  { name: 'duration given as a number', raw: { edge: { upstreamTimeout: 60 } }, says: ['edge.upstreamTimeout', /expected string/, 'got 60'] },
  {
    name: 'connection name with capitals and "_"',
    raw: { connections: [kube({ name: 'Prod_1' })] },
    says: ['connections.0.name', 'DNS-label', 'got "Prod_1"'],
  },
  { name: 'connection name ending in "-"', raw: { connections: [kube({ name: 'prod-' })] }, says: ['connections.0.name', 'DNS-label', 'got "prod-"'] },
  { name: 'connection name longer than 63', raw: { connections: [kube({ name: 'a'.repeat(64) })] }, says: ['connections.0.name', 'DNS-label'] },
  {
    name: 'duplicate connection names',
    raw: { connections: [kube(), { name: 'prod', type: 'http', server: 'https://x.example' }] },
    says: ['connections', '"prod"', 'used twice'],
  },
  {
    name: 'kubernetes server not a URL',
    raw: { connections: [kube({ server: '10.0.0.1:6443 ' })] },
    says: ['connections.0.server', /URL/i, 'got "10.0.0.1:6443 "'],
  },
  { name: 'unknown connection type', raw: { connections: [kube({ type: 'ssh' })] }, says: ['connections.0.type', /kubernetes/, /http/] },
  {
    name: 'tls certFile without keyFile',
    raw: { edge: { tls: { certFile: 'cert.pem' } } },
    says: ['edge.tls', 'certFile and keyFile go together', 'cert.pem'],
  },
  { name: 'tls keyFile without certFile', raw: { edge: { tls: { keyFile: 'key.pem' } } }, says: ['edge.tls', 'certFile and keyFile go together'] },
  { name: 'bus.mode kafka', raw: { bus: { mode: 'kafka' } }, says: ['bus.mode', /"embedded"/, /"nats"/, 'got "kafka"'] },
  { name: 'empty nats server list', raw: { bus: { mode: 'nats', nats: { servers: [] } } }, says: ['bus.nats.servers', />=1/] },
  { name: 'replicas over 5', raw: { bus: { auditStream: { replicas: 7 } } }, says: ['bus.auditStream.replicas', /<=5/, 'got 7'] },
  {
    name: 'issuer algorithm HS256',
    raw: { identity: { issuers: [{ issuer: 'https://idp.example.com', audiences: ['p'], algorithms: ['HS256'] }] } },
    says: ['identity.issuers.0.algorithms.0', /"RS256"/, 'got "HS256"'],
  },
  {
    name: 'issuer algorithm none',
    raw: { identity: { issuers: [{ issuer: 'https://idp.example.com', audiences: ['p'], algorithms: ['none'] }] } },
    says: ['identity.issuers.0.algorithms.0', 'got "none"'],
  },
  {
    name: 'issuer without audiences',
    raw: { identity: { issuers: [{ issuer: 'https://idp.example.com', audiences: [] }] } },
    says: ['identity.issuers.0.audiences', />=1/],
  },
  {
    name: 'issuer over http',
    raw: { identity: { issuers: [{ issuer: 'http://idp.example.com', audiences: ['p'] }] } },
    says: ['identity.issuers.0.issuer', 'https://', 'got "http://idp.example.com"'],
  },
  {
    name: 'jwksUri over http',
    raw: { identity: { issuers: [{ issuer: 'https://idp.example.com', audiences: ['p'], jwksUri: 'http://idp.example.com/keys' }] } },
    says: ['identity.issuers.0.jwksUri', 'https://'],
  },
  {
    name: 'required claim with an empty list',
    raw: { identity: { issuers: [{ issuer: 'https://idp.example.com', audiences: ['p'], requiredClaims: { ref: [] } }] } },
    says: ['identity.issuers.0.requiredClaims.ref'],
  },
  {
    name: 'client certificate without its key',
    raw: { connections: [kube({ clientCertFile: 'c.pem' })] },
    says: ['connections.0.clientCertFile', 'clientCertFile and clientKeyFile go together'],
  },
  {
    name: 'kubernetes connection without server or inCluster',
    raw: { connections: [kube({ server: undefined })] },
    says: ['connections.0.server', 'inCluster'],
  },
  { name: 'connection audiences empty', raw: { connections: [kube({ audiences: [] })] }, says: ['connections.0.audiences', />=1/] },
  { name: 'sandbox.enabled yes', raw: { sandbox: { enabled: 'yes' } }, says: ['sandbox.enabled', /"auto"/, 'got "yes"'] },
  {
    name: 'clickhouse database with SQL in it',
    raw: { audit: { clickhouse: { database: 'x; DROP TABLE y' } } },
    says: ['audit.clickhouse.database', 'got "x; DROP TABLE y"'],
  },
  { name: 'node.id with a space', raw: { node: { id: 'edge 1' } }, says: ['node.id', 'got "edge 1"'] },
  { name: 'a section given as a string', raw: { edge: 'fast' }, says: ['edge', /expected object/, 'got "fast"'] },
  { name: 'the whole config is a list', raw: ['edge'], says: ['(top level)', /expected object/] },
  { name: 'policy.source kv in embedded mode', raw: { policy: { source: 'kv' } }, says: ['policy.source', 'needs bus.mode: nats', 'got "kv"'] },
  { name: 'policy.source git', raw: { bus: { mode: 'nats' }, policy: { source: 'git' } }, says: ['policy.source', /"kv"/, /"file"/, 'got "git"'] },
  { name: 'decision cache ttl of zero', raw: { edge: { decisionCache: { ttl: '0s' } } }, says: ['edge.decisionCache.ttl', 'between 1ms and 5m'] },
  {
    name: 'headers timeout under its range',
    raw: { edge: { headersTimeout: '50ms' } },
    says: ['edge.headersTimeout', 'expected a duration between 100ms and 5m', 'got "50ms"'],
  },
  { name: 'audit retention under a day', raw: { audit: { retention: '12h' } }, says: ['audit.retention', 'expected a duration of at least 1d', 'got "12h"'] },
  { name: 'duration with units out of order', raw: { approval: { grantTtl: '30m1h' } }, says: ['approval.grantTtl', 'largest first', 'got "30m1h"'] },
  { name: 'decision cache ttl of an hour', raw: { edge: { decisionCache: { ttl: '1h' } } }, says: ['edge.decisionCache.ttl', 'between 1ms and 5m'] },
  { name: 'decision cache without a bound', raw: { edge: { decisionCache: { maxEntries: 0 } } }, says: ['edge.decisionCache.maxEntries', />=1/, 'got 0'] },
  { name: 'admin groups as a string', raw: { edge: { admin: { groups: 'sre' } } }, says: ['edge.admin.groups', /expected array/, 'got "sre"'] },
];

describe('parseConfig: policy source, decision cache and admin groups', () => {
  test('defaults: file in embedded mode, kv in cluster mode; cache on for 5s, 10000 entries; no admin groups', () => {
    const embedded = parseConfig({}, { configDir: '/etc/portcullis' });
    assert.equal(embedded.policy.source, 'file');
    assert.deepEqual({ ...embedded.edge.decisionCache }, { enabled: true, ttl: 5000, maxEntries: 10_000 });
    assert.deepEqual([...embedded.edge.admin.groups], []);
    const cluster = parseConfig({ bus: { mode: 'nats' } }, { configDir: '/etc/portcullis' });
    assert.equal(cluster.policy.source, 'kv');
    const pinned = parseConfig({ bus: { mode: 'nats' }, policy: { source: 'file' } }, { configDir: '/etc/portcullis' });
    assert.equal(pinned.policy.source, 'file');
  });
});

describe('parseConfig: bad configs are refused with key, value and expectation', () => {
  for (const c of BAD_CONFIGS) {
    test(c.name, () => {
      const err = refused(c.raw);
      assert.ok(err.message.startsWith('test.yaml'), `message names the source: ${err.message}`);
      assert.ok(err.problems.length >= 1);
      for (const s of c.says) {
        if (typeof s === 'string') assert.ok(err.message.includes(s), `expected ${JSON.stringify(s)} in:\n${err.message}`);
        else assert.match(err.message, s);
      }
    });
  }

  test('every problem is reported, not just the first', () => {
    const err = refused({ edge: { listen: { port: 'abc' }, decisionTimeout: 'soon' }, bus: { mode: 'kafka' } });
    assert.equal(err.problems.length, 3, err.message);
    assert.ok(err.problems.some((p) => p.startsWith('edge.listen.port')));
    assert.ok(err.problems.some((p) => p.startsWith('edge.decisionTimeout')));
    assert.ok(err.problems.some((p) => p.startsWith('bus.mode')));
  });
});

describe('parseConfig: ${ENV} expansion', () => {
  test('references are replaced, also inside longer strings and lists', () => {
    const cfg = parse(
      { bus: { nats: { servers: ['nats://${NATS_HOST}:4222'], password: '${NATS_PASSWORD}' } }, node: { id: 'edge-${POD}' } },
      { NATS_HOST: 'nats.internal', NATS_PASSWORD: 's3cr3t-pw', POD: '7' },
    );
    assert.deepEqual(cfg.bus.nats.servers, ['nats://nats.internal:4222']);
    assert.equal(cfg.bus.nats.password, 's3cr3t-pw');
    assert.equal(cfg.node.id, 'edge-7');
  });

  test('a value from the environment is validated like a literal', () => {
    const err = refused({ edge: { listen: { host: '${HOST}' }, decisionTimeout: '${TIMEOUT}' } }, { HOST: 'h', TIMEOUT: 'forever' });
    assert.match(err.message, /edge\.decisionTimeout: expected a duration.*got "forever"/);
  });

  test('a missing variable is named, with the key that references it', () => {
    const err = refused(
      { bus: { nats: { token: '${NATS_TOKEN}' } }, identity: { devIssuer: { clients: [{ id: 'a', secret: '${CI_SECRET}' }] } } },
      { OTHER: 'x' },
    );
    assert.match(err.message, /bus\.nats\.token: environment variable NATS_TOKEN is not set/);
    assert.match(err.message, /identity\.devIssuer\.clients\.0\.secret: environment variable CI_SECRET is not set/);
    assert.equal(err.problems.length, 2);
  });

  test('an empty variable is set (empty string), not missing', () => {
    const cfg = parse({ audit: { clickhouse: { password: '${CH_PASSWORD}' } } }, { CH_PASSWORD: '' });
    assert.equal(cfg.audit.clickhouse.password, '');
  });

  test('lower-case and $NAME without braces are left alone', () => {
    const cfg = parse({ audit: { clickhouse: { password: '$HOME-${home}' } } }, { HOME: '/root' });
    assert.equal(cfg.audit.clickhouse.password, '$HOME-${home}');
  });
});

describe('parseConfig: secrets are never echoed back', () => {
  const SECRET_CASES: readonly { name: string; raw: unknown; env?: NodeJS.ProcessEnv; secret: string; says: string }[] = [
    {
      name: 'dev client secret too short',
      raw: { identity: { devIssuer: { clients: [{ id: 'ci', secret: 'hunter2' }] } } },
      secret: 'hunter2',
      says: 'identity.devIssuer.clients.0.secret',
    },
    {
      name: 'dev client secret from the environment, too short',
      raw: { identity: { devIssuer: { clients: [{ id: 'ci', secret: '${S}' }] } } },
      env: { S: 'pa55wd' },
      secret: 'pa55wd',
      says: 'identity.devIssuer.clients.0.secret',
    },
    {
      name: 'dev client secret of the wrong type',
      raw: { identity: { devIssuer: { clients: [{ id: 'ci', secret: 98765432109 }] } } },
      secret: '98765432109',
      says: 'identity.devIssuer.clients.0.secret',
    },
    { name: 'nats password of the wrong type', raw: { bus: { nats: { password: 424242424242 } } }, secret: '424242424242', says: 'bus.nats.password' },
    { name: 'nats token of the wrong type', raw: { bus: { nats: { token: ['tok-abcdef'] } } }, secret: 'tok-abcdef', says: 'bus.nats.token' },
    {
      name: 'clickhouse password of the wrong type',
      raw: { audit: { clickhouse: { password: { value: 'ch-secret-99' } } } },
      secret: 'ch-secret-99',
      says: 'audit.clickhouse.password',
    },
    // A YAML list item without its "-" makes `clients` a map: the error is on `clients`, whose value holds the secret.
    {
      name: 'dev clients given as a map, not a list',
      raw: { identity: { devIssuer: { clients: { id: 'ci', secret: 'very-secret-value' } } } },
      secret: 'very-secret-value',
      says: 'identity.devIssuer.clients: Invalid input: expected array',
    },
    {
      name: 'nats settings given as a list',
      raw: { bus: { nats: [{ servers: ['nats://a'], password: 'nats-pw-1234' }] } },
      secret: 'nats-pw-1234',
      says: 'bus.nats: Invalid input: expected object',
    },
  ];
  for (const c of SECRET_CASES) {
    test(c.name, () => {
      const err = refused(c.raw, c.env ?? {});
      assert.ok(err.message.includes(c.says), err.message);
      assert.ok(!err.message.includes(c.secret), `secret echoed: ${err.message}`);
      for (const p of err.problems) assert.ok(!p.includes(c.secret), `secret echoed in problems: ${p}`);
      assert.ok(!(err.stack ?? '').includes(c.secret), 'secret echoed in the stack');
    });
  }
});

describe('loadConfigFile', () => {
  test('reads YAML, expands the environment and resolves paths against the file', () => {
    const file = writeTmp('ok.yaml', 'edge:\n  listen: { port: 9443 }\nbus:\n  nats:\n    password: ${PW}\npolicy:\n  file: p.yaml\n');
    const cfg = loadConfigFile(file, { PW: 'pw-from-env' });
    assert.equal(cfg.configDir, tmp);
    assert.equal(cfg.edge.listen.port, 9443);
    assert.equal(cfg.bus.nats.password, 'pw-from-env');
    assert.equal(cfg.policy.file, join(tmp, 'p.yaml'));
    assert.equal(cfg.node.stateDir, join(tmp, '.portcullis'));
    assert.ok(Object.isFrozen(cfg.edge.listen));
  });

  test('an empty file is the all-defaults config', () => {
    const cfg = loadConfigFile(writeTmp('empty.yaml', ''), {});
    assert.equal(cfg.edge.listen.port, 8443);
  });

  test('invalid YAML → ConfigError naming the file', () => {
    const file = writeTmp('broken.yaml', 'edge:\n  listen: { port: 8443\n  tls: [\n');
    assert.throws(
      () => loadConfigFile(file, {}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.ok(err.message.includes(file), err.message);
        assert.match(err.message, /not valid YAML/);
        return true;
      },
    );
  });

  test('a schema error names the file as its source', () => {
    const file = writeTmp('bad.yaml', 'bus:\n  mode: kafka\n');
    assert.throws(
      () => loadConfigFile(file, {}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.ok(err.message.startsWith(`${file} is invalid`), err.message);
        assert.match(err.message, /bus\.mode: .*got "kafka"/);
        return true;
      },
    );
  });

  test('a missing file → ConfigError with ENOENT', () => {
    const file = join(tmp, 'does-not-exist.yaml');
    assert.throws(
      () => loadConfigFile(file, {}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.ok(err.message.includes(file), err.message);
        assert.match(err.message, /ENOENT/);
        return true;
      },
    );
  });

  test('portcullis.example.yaml (what `npm start` uses) is valid', () => {
    const file = join(repoRoot, 'portcullis.example.yaml');
    const cfg = loadConfigFile(file, {});
    assert.equal(cfg.configDir, repoRoot.replace(/\/$/, ''));
    assert.equal(cfg.bus.mode, 'embedded');
    assert.equal(cfg.edge.listen.port, 8443);
    assert.equal(cfg.identity.devIssuer.enabled, true);
    assert.deepEqual(
      cfg.identity.devIssuer.clients.map((c) => c.id),
      ['ci-bot', 'sre-alice'],
    );
    assert.equal(cfg.policy.file, join(repoRoot, 'examples/policy.yaml'));
    assert.equal(cfg.audit.sqlite.file, join(repoRoot, '.portcullis/audit.db'));
    assert.equal(cfg.audit.clickhouse.flushInterval, 200);
    assert.equal(cfg.approval.listen.port, 8444);
    assert.equal(cfg.approval.pendingTtl, 15 * 60_000);
    assert.equal(cfg.approval.slack.enabled, false);
  });

  test('the commented issuer and connection examples in portcullis.example.yaml are valid when uncommented', () => {
    const lines = readFileSync(join(repoRoot, 'portcullis.example.yaml'), 'utf8').split('\n');
    /** Blocks starting at `<indent># - <key>:` with the commented lines that follow at the same indent. */
    const blocks = (indent: string, key: string): string[] => {
      const out: string[] = [];
      let cur: string[] | undefined;
      for (const l of lines) {
        if (l.startsWith(`${indent}# - ${key}:`)) {
          if (cur !== undefined) out[out.length - 1] = cur.join('\n');
          cur = [l.slice(indent.length + 2)];
          out.push('');
        } else if (cur !== undefined && l.startsWith(`${indent}#   `)) {
          cur.push(l.slice(indent.length + 2));
        } else if (cur !== undefined) {
          out[out.length - 1] = cur.join('\n');
          cur = undefined;
        }
      }
      return out;
    };
    const issuers = blocks('  ', 'issuer').map((b) => parseYaml(b) as unknown[]);
    const connections = blocks('', 'name').map((b) => parseYaml(b) as unknown[]);
    assert.equal(issuers.length, 3, 'generic OIDC, Kubernetes projected tokens, GitHub Actions');
    assert.equal(connections.length, 3);
    const cfg = parse({ identity: { issuers: issuers.flat() }, connections: connections.flat() });
    assert.deepEqual(
      cfg.identity.issuers.map((i) => i.issuer),
      ['https://accounts.example.com/realms/machines', 'https://kubernetes.default.svc.cluster.local', 'https://token.actions.githubusercontent.com'],
    );
    assert.deepEqual(cfg.identity.issuers[2]?.requiredClaims, { repository: 'acme/deploy', ref: ['refs/heads/main', 'refs/tags/v1'] });
    assert.deepEqual(
      cfg.connections.map((c) => c.name),
      ['prod', 'local', 'billing'],
    );
  });
});
