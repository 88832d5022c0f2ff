/**
 * The masking leak corpus: real-shaped Kubernetes and HTTP bodies with planted secrets, in every
 * representation the edge masks. Each case lists the planted values; none may survive masking,
 * in any encoding (raw, base64, base64 of base64, JSON-escaped).
 */

/** One leak attempt. */
export interface LeakCase {
  readonly name: string;
  /** Body bytes as the upstream would send them (NDJSON for watch streams). */
  readonly body: string;
  readonly mode: 'kubernetes' | 'generic';
  readonly kindHint?: string;
  /** Values that must not appear in the masked output in any encoding. */
  readonly planted: readonly string[];
  /** Values that must survive (to prove the masker did not just blank everything). */
  readonly kept?: readonly string[];
  /** JSON paths for generic cases. */
  readonly jsonPaths?: readonly string[];
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const j = (v: unknown): string => JSON.stringify(v);

// Planted values: each one unique and each one shaped like the secret it stands for.
export const P = {
  pw1: 'Pl4nted-Passw0rd-Alpha!',
  pw2: 'Pl4nted-Passw0rd-Bravo#',
  sd1: 'planted-stringdata-charlie-9f8e7d',
  tokenJwt:
    'eyJhbGciOiJSUzI1NiIsImtpZCI6InBsYW50ZWQifQ.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoicGxhbnRlZCJ9.c2lnbmF0dXJlLXBsYW50ZWQtZGVsdGEtMDEyMzQ1Njc4OQ',
  pem: '-----BEGIN RSA PRIVATE KEY-----\nMIIEplantedEchoKeyMaterial0123456789abcdefABCDEF\n-----END RSA PRIVATE KEY-----\n',
  akid: 'AKIAPLANTEDFOXTROT12',
  awsSecret: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY',
  ghp: 'ghp_PlantedGolfToken0123456789abcdefABCDEF',
  slack: 'xoxb-123456789012-PlantedHotelSlackToken',
  webhook: 'https://hooks.slack.com/services/T0PLANTED/B0INDIA/PlantedIndiaWebhookSecret',
  bearer: 'plantedJulietBearerCredential0123456789',
  envPw: 'planted-env-kilo-value-77',
  envTok: 'planted-env-lima-token-88',
  cmPw: 'planted-configmap-mike-pw',
  binKey: 'planted-binary-november-key',
  apiKey: 'Zk2pL9qW3xR7tY1uV5sN8mB4',
  generic: 'planted-generic-oscar-cred-Q7w',
} as const;

const secret = (name: string, data: Record<string, string>, extra: Record<string, unknown> = {}) => ({
  kind: 'Secret',
  apiVersion: 'v1',
  metadata: { name, namespace: 'default', resourceVersion: '12' },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  type: 'Opaque',
  ...extra,
});
const listItem = (o: Record<string, unknown>) => {
  const { kind: _k, apiVersion: _a, ...rest } = o;
  return rest;
};
const configMap = (name: string, data: Record<string, string>, extra: Record<string, unknown> = {}) => ({
  kind: 'ConfigMap',
  apiVersion: 'v1',
  metadata: { name, namespace: 'default' },
  data,
  ...extra,
});
const pod = (name: string, env: { name: string; value: string }[], extra: Record<string, unknown> = {}) => ({
  kind: 'Pod',
  apiVersion: 'v1',
  metadata: { name, namespace: 'default', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'nginx:1.27', env }] },
  ...extra,
});
const lastApplied = (o: unknown) => ({ 'kubectl.kubernetes.io/last-applied-configuration': `${j(o)}\n` });
const table = (rows: unknown[]) => ({
  kind: 'Table',
  apiVersion: 'meta.k8s.io/v1',
  metadata: { resourceVersion: '40' },
  columnDefinitions: [{ name: 'Name', type: 'string', format: 'name', description: '', priority: 0 }],
  rows,
});
const watch = (...events: { type: string; object: unknown }[]) => events.map((e) => j(e)).join('\n') + '\n';

/** The corpus: at least 40 leak attempts across representations and kinds. */
export const LEAK_CORPUS: readonly LeakCase[] = [
  // --- Secrets -----------------------------------------------------------------------------
  { name: 'Secret object: .data', mode: 'kubernetes', kindHint: 'Secret', body: j(secret('db', { password: P.pw1 })), planted: [P.pw1], kept: ['"db"'] },
  {
    name: 'Secret object: .stringData',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: j({ ...secret('db', {}), stringData: { password: P.sd1 } }),
    planted: [P.sd1],
  },
  {
    name: 'SecretList: items[*].data (items carry no kind)',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: j({
      kind: 'SecretList',
      apiVersion: 'v1',
      metadata: { resourceVersion: '9' },
      items: [listItem(secret('a', { password: P.pw1 })), listItem(secret('b', { token: P.pw2 }))],
    }),
    planted: [P.pw1, P.pw2],
    kept: ['"a"', '"b"'],
  },
  {
    name: 'SecretList with kind after items',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: `{"items":[${j(listItem(secret('a', { password: P.pw1 })))}],"metadata":{},"apiVersion":"v1","kind":"SecretList"}`,
    planted: [P.pw1],
  },
  {
    name: 'SecretList with no kind anywhere and no hint (fail safe)',
    mode: 'kubernetes',
    body: j({ items: [listItem(secret('a', { password: P.pw1 }))] }),
    planted: [P.pw1],
  },
  {
    name: 'Table of Secrets, includeObject=Object',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: j(table([{ cells: ['db', 'Opaque', 1, '5m'], object: secret('db', { password: P.pw1 }) }])),
    planted: [P.pw1],
    kept: ['"Opaque"'],
  },
  {
    name: 'Table row object without kind',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: j(table([{ cells: ['db'], object: listItem(secret('db', { password: P.pw1 })) }])),
    planted: [P.pw1],
  },
  {
    name: 'PartialObjectMetadataList: last-applied annotation carries the Secret',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: j({
      kind: 'PartialObjectMetadataList',
      apiVersion: 'meta.k8s.io/v1',
      metadata: {},
      items: [
        { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'db', annotations: lastApplied(secret('db', { password: P.pw1 })) } },
      ],
    }),
    planted: [P.pw1],
  },
  {
    name: 'watch: one ADDED Secret event',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: watch({ type: 'ADDED', object: secret('db', { password: P.pw1 }) }),
    planted: [P.pw1],
    kept: ['"ADDED"'],
  },
  {
    name: 'watch: several events, stringData and data, BOOKMARK between',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: watch(
      { type: 'ADDED', object: secret('a', { password: P.pw1 }) },
      { type: 'BOOKMARK', object: { kind: 'Secret', apiVersion: 'v1', metadata: { resourceVersion: '77' } } },
      { type: 'MODIFIED', object: { ...secret('a', {}), stringData: { password: P.sd1 } } },
      { type: 'DELETED', object: secret('a', { password: P.pw2 }) },
    ),
    planted: [P.pw1, P.pw2, P.sd1],
  },
  {
    name: 'Secret with last-applied-configuration holding the data',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: j(secret('db', { password: P.pw1 }, { metadata: { name: 'db', annotations: lastApplied(secret('db', { password: P.pw2 })) } })),
    planted: [P.pw1, P.pw2],
  },
  {
    name: 'last-applied that is not JSON is replaced wholesale',
    mode: 'kubernetes',
    kindHint: 'Pod',
    body: j(
      pod('p', [], {
        metadata: {
          name: 'p',
          annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `apiVersion: v1\nkind: Secret\nstringData:\n  password: ${P.sd1}\n` },
        },
      }),
    ),
    planted: [P.sd1],
  },
  {
    name: 'unicode escapes in keys: \\u0064ata and \\u0070assword',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"},"\\u0064ata":{"\\u0070assword":"${b64(P.pw1)}"},"stringD\\u0061ta":{"k":"${P.sd1}"}}`,
    planted: [P.pw1, P.sd1],
  },
  {
    name: 'unicode escapes inside the secret value',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: `{"kind":"Secret","apiVersion":"v1","stringData":{"k":"${[...P.sd1].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"}}`,
    planted: [P.sd1],
  },
  {
    name: 'Secret data values that are not strings keep their type',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: j({ kind: 'Secret', apiVersion: 'v1', data: { n: 4242424242, nested: { deep: [P.pw1] } } }),
    planted: [P.pw1, '4242424242'],
  },
  {
    name: 'List of mixed kinds (Secret and ConfigMap) with kinds on items',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: j({
      kind: 'List',
      apiVersion: 'v1',
      metadata: {},
      items: [secret('s', { password: P.pw1 }), configMap('c', { 'db-password': P.cmPw, plain: 'keep-me' })],
    }),
    planted: [P.pw1, P.cmPw],
    kept: ['keep-me'],
  },
  {
    name: 'very long line: one Secret with a 1 MiB value',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: j(secret('big', { blob: `${'x'.repeat(1024 * 1024)}${P.pw1}` })),
    planted: [P.pw1],
  },
  {
    name: 'nested list: a ConfigMap value holding a whole SecretList as escaped JSON',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: j(configMap('backup', { 'dump.json': j({ kind: 'SecretList', apiVersion: 'v1', items: [secret('a', { password: P.pw1 })] }) })),
    planted: [P.pw1],
  },
  {
    name: 'service-account-token Secret: data.token is a JWT',
    mode: 'kubernetes',
    kindHint: 'Secret',
    body: j({ ...secret('sa-token', { token: P.tokenJwt, 'ca.crt': 'cert' }), type: 'kubernetes.io/service-account-token' }),
    planted: [P.tokenJwt],
  },
  {
    name: 'TokenRequest: status.token',
    mode: 'kubernetes',
    kindHint: 'TokenRequest',
    body: j({
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      spec: { audiences: ['api'] },
      status: { token: 'planted-opaque-token-value', expirationTimestamp: '2030-01-01T00:00:00Z' },
    }),
    planted: ['planted-opaque-token-value'],
  },
  // --- ConfigMaps --------------------------------------------------------------------------
  {
    name: 'ConfigMap key by pattern: db-password',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: j(configMap('c', { 'db-password': P.cmPw, LOG_LEVEL: 'info' })),
    planted: [P.cmPw],
    kept: ['info'],
  },
  {
    name: 'ConfigMap binaryData key by pattern: tls.key',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: j(configMap('c', {}, { binaryData: { 'tls.key': b64(P.binKey) } })),
    planted: [P.binKey],
  },
  {
    name: 'ConfigMap value with a PEM private key',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: j(configMap('c', { 'bundle.txt': `header\n${P.pem}footer` })),
    planted: ['MIIEplantedEchoKeyMaterial'],
    kept: ['header'],
  },
  {
    name: 'ConfigMap value with AWS keys in a credentials file',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: j(configMap('c', { 'aws-config': `[default]\naws_access_key_id = ${P.akid}\naws_secret_access_key = ${P.awsSecret}\n` })),
    planted: [P.akid, P.awsSecret],
    kept: ['[default]'],
  },
  {
    name: 'ConfigMap value with a GitHub token',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: j(configMap('c', { 'ci.sh': `git clone https://x:${P.ghp}@github.com/o/r` })),
    planted: [P.ghp],
  },
  {
    name: 'ConfigMap value with a Slack token and webhook',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: j(configMap('c', { notify: `token=${P.slack} url=${P.webhook}` })),
    planted: [P.slack, 'PlantedIndiaWebhookSecret'],
  },
  {
    name: 'ConfigMap value: escaped JSON with a password field',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: j(configMap('c', { 'app.json': j({ db: { host: 'db', password: P.cmPw } }) })),
    planted: [P.cmPw],
    kept: ['\\"host\\":\\"db\\"'],
  },
  {
    name: 'ConfigMap value: base64 inside base64 of a PEM key',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: j(configMap('c', { blob: b64(b64(P.pem)) })),
    planted: ['MIIEplantedEchoKeyMaterial'],
  },
  {
    name: 'ConfigMap value: JSON inside JSON inside a string with a JWT',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: j(configMap('c', { outer: j({ inner: j({ note: `jwt ${P.tokenJwt}` }) }) })),
    planted: [P.tokenJwt],
  },
  {
    name: 'Table of ConfigMaps: a cell with a bearer token',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: j(
      table([
        { cells: ['c', `Authorization: Bearer ${P.bearer}`], object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'c' } } },
      ]),
    ),
    planted: [P.bearer],
  },
  {
    name: 'watch: ConfigMap MODIFIED with a secret key',
    mode: 'kubernetes',
    kindHint: 'ConfigMap',
    body: watch({ type: 'MODIFIED', object: configMap('c', { 'api-token': P.envTok }) }),
    planted: [P.envTok],
  },
  // --- Pods and workloads ------------------------------------------------------------------
  {
    name: 'Pod env: DB_PASSWORD',
    mode: 'kubernetes',
    kindHint: 'Pod',
    body: j(
      pod('p', [
        { name: 'DB_PASSWORD', value: P.envPw },
        { name: 'LOG_LEVEL', value: 'debug' },
      ]),
    ),
    planted: [P.envPw],
    kept: ['debug'],
  },
  {
    name: 'Pod initContainers env: API_TOKEN (value before name)',
    mode: 'kubernetes',
    kindHint: 'Pod',
    body: `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{"initContainers":[{"name":"i","env":[{"value":"${P.envTok}","name":"API_TOKEN"}]}],"containers":[]}}`,
    planted: [P.envTok],
  },
  {
    name: 'PodList: items[*].spec.containers[*].env',
    mode: 'kubernetes',
    kindHint: 'Pod',
    body: j({
      kind: 'PodList',
      apiVersion: 'v1',
      metadata: {},
      items: [listItem(pod('a', [{ name: 'SECRET_KEY', value: P.envPw }])), listItem(pod('b', [{ name: 'GITHUB_TOKEN', value: P.envTok }]))],
    }),
    planted: [P.envPw, P.envTok],
  },
  {
    name: 'Deployment pod template env (nested)',
    mode: 'kubernetes',
    kindHint: 'Deployment',
    body: j({
      kind: 'Deployment',
      apiVersion: 'apps/v1',
      metadata: { name: 'd' },
      spec: { template: { spec: { containers: [{ name: 'c', env: [{ name: 'STRIPE_API_KEY', value: P.envPw }] }] } } },
    }),
    planted: [P.envPw],
  },
  {
    name: 'Pod annotation with a bearer token inside a string',
    mode: 'kubernetes',
    kindHint: 'Pod',
    body: j(pod('p', [], { metadata: { name: 'p', annotations: { probe: `curl -H "Authorization: Bearer ${P.bearer}" http://x` } } })),
    planted: [P.bearer],
    kept: ['curl -H'],
  },
  {
    name: 'Pod env value that is a JWT under an innocent name',
    mode: 'kubernetes',
    kindHint: 'Pod',
    body: j(pod('p', [{ name: 'CONFIG_BLOB', value: P.tokenJwt }])),
    planted: [P.tokenJwt],
  },
  {
    name: 'watch: Pod event with a secret env',
    mode: 'kubernetes',
    kindHint: 'Pod',
    body: watch({ type: 'ADDED', object: pod('p', [{ name: 'DB_PASSWORD', value: P.envPw }]) }),
    planted: [P.envPw],
  },
  {
    name: 'Pod last-applied annotation with the env secret',
    mode: 'kubernetes',
    kindHint: 'Pod',
    body: j(pod('p', [{ name: 'X', value: 'y' }], { metadata: { name: 'p', annotations: lastApplied(pod('p', [{ name: 'DB_PASSWORD', value: P.envPw }])) } })),
    planted: [P.envPw],
  },
  {
    name: 'Table of Pods with includeObject=Object',
    mode: 'kubernetes',
    kindHint: 'Pod',
    body: j(table([{ cells: ['p', '1/1', 'Running'], object: pod('p', [{ name: 'AWS_SECRET_ACCESS_KEY', value: P.awsSecret }]) }])),
    planted: [P.awsSecret],
    kept: ['Running'],
  },
  {
    name: 'Pod env: AWS access key id under an innocent name',
    mode: 'kubernetes',
    kindHint: 'Pod',
    body: j(pod('p', [{ name: 'ID', value: P.akid }])),
    planted: [P.akid],
  },
  // --- Generic HTTP --------------------------------------------------------------------------
  {
    name: 'generic JSON: configured JSON paths',
    mode: 'generic',
    jsonPaths: ['$.credentials.*', '$..apiKey'],
    body: j({ credentials: { user: 'svc', pass: P.generic }, services: [{ name: 'a', config: { apiKey: P.apiKey } }] }),
    planted: [P.generic, P.apiKey],
    kept: ['"services"'],
  },
  {
    name: 'generic JSON root array: password fields',
    mode: 'generic',
    body: j([
      { user: 'a', password: P.pw1 },
      { user: 'b', password: P.pw2 },
    ]),
    planted: [P.pw1, P.pw2],
    kept: ['"a"'],
  },
  { name: 'generic JSON: unicode-escaped token key', mode: 'generic', body: `{"\\u0074oken":"${P.apiKey}","ok":true}`, planted: [P.apiKey] },
  {
    name: 'generic NDJSON stream: each line masked',
    mode: 'generic',
    body: `${j({ event: 'login', authorization: `Bearer ${P.bearer}` })}\n${j({ event: 'x', client_secret: P.generic })}\n`,
    planted: [P.bearer, P.generic],
  },
];

/** Every encoding of `value` that would still reveal it. */
export function leakForms(value: string): string[] {
  return [value, b64(value), b64(b64(value)), JSON.stringify(value).slice(1, -1)];
}

/** The planted values of `c` that appear in `output` in any form. */
export function leaksIn(output: string, planted: readonly string[]): string[] {
  return planted.filter((p) => leakForms(p).some((f) => output.includes(f)));
}
