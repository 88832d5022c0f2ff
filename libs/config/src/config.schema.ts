import { z } from 'zod';
import { checkDuration, DurationError, type DurationLimits } from '@portcullis/common/pure';
import { JsonPathRule } from '@portcullis/masking';

/** A duration of the one grammar (`@portcullis/common`), in ms; the issue names what is allowed (the loader adds the value). */
const duration = (limits?: DurationLimits) =>
  z.string().transform((text, ctx) => {
    const ms = checkDuration(text, limits);
    if (ms instanceof DurationError) {
      ctx.addIssue({ code: 'custom', message: ms.expected, input: text });
      return z.NEVER;
    }
    return ms;
  });

/** Connection names become URL path segments and NATS subject tokens. */
const connectionName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'expected a DNS-label name: lowercase letters, digits and "-"');

const port = z.number().int().min(0).max(65535);

const devClient = z.strictObject({
  id: z.string().min(1),
  secret: z.string().min(8, 'expected a client secret of at least 8 characters'),
  subject: z.string().min(1).optional(),
  groups: z.array(z.string()).default([]),
  scopes: z.array(z.string()).default([]),
});

const httpsUrl = (what: string) => z.url().refine((u) => u.startsWith('https://'), `expected an https:// URL for ${what}`);

const issuer = z.strictObject({
  issuer: httpsUrl('the issuer (its discovery and keys are fetched over https)'),
  audiences: z.array(z.string().min(1)).min(1),
  jwksUri: httpsUrl('jwksUri').optional(),
  caFile: z.string().optional(),
  algorithms: z.array(z.enum(['RS256', 'PS256', 'ES256', 'EdDSA'])).default(['RS256', 'PS256', 'ES256', 'EdDSA']),
  subjectClaim: z.string().default('sub'),
  groupsClaim: z.string().default('groups'),
  clientIdClaim: z.string().default('client_id'),
  scopeClaim: z.string().default('scope'),
  requiredClaims: z.record(z.string().min(1), z.union([z.string(), z.array(z.string()).min(1)])).default({}),
  jwksCacheLifetime: duration().default(600_000),
  jwksRefetchCooldown: duration().default(30_000),
});

/** The upstream credential fields every connection type shares. */
const credentialFields = {
  caFile: z.string().optional(),
  tokenFile: z.string().optional(),
  clientCertFile: z.string().optional(),
  clientKeyFile: z.string().optional(),
  insecureSkipTlsVerify: z.boolean().default(false),
  audiences: z.array(z.string().min(1)).min(1).optional(),
};
const certAndKeyTogether = (c: { clientCertFile?: string | undefined; clientKeyFile?: string | undefined }): boolean =>
  (c.clientCertFile === undefined) === (c.clientKeyFile === undefined);

const kubernetesConnection = z
  .strictObject({
    name: connectionName,
    type: z.literal('kubernetes'),
    server: z.url().optional(),
    ...credentialFields,
    inCluster: z.boolean().default(false),
    serviceAccountDir: z.string().default('/var/run/secrets/kubernetes.io/serviceaccount'),
    impersonate: z.boolean().default(true),
    impersonationPrefix: z.string().default('portcullis:'),
  })
  .refine(certAndKeyTogether, { message: 'clientCertFile and clientKeyFile go together', path: ['clientCertFile'] })
  .refine((c) => c.server !== undefined || c.inCluster, { message: 'expected server (or inCluster: true)', path: ['server'] });

const httpConnection = z
  .strictObject({
    name: connectionName,
    type: z.literal('http'),
    server: z.url(),
    ...credentialFields,
  })
  .refine(certAndKeyTogether, { message: 'clientCertFile and clientKeyFile go together', path: ['clientCertFile'] });

const DETECTORS = [
  'jwt',
  'pem-private-key',
  'aws-access-key-id',
  'aws-secret-access-key',
  'github-token',
  'slack-token',
  'bearer-token',
  'secret-named-field',
  'email',
  'card-number',
] as const;

const maskingProfile = z.strictObject({
  replacement: z.enum(['marker', 'hmac']).default('marker'),
  kubernetes: z
    .strictObject({
      secretData: z.boolean().default(true),
      lastAppliedConfiguration: z.enum(['mask-inside', 'replace']).default('mask-inside'),
      envNamePatterns: z.array(z.string().min(1)).optional(),
      configMapKeyPatterns: z.array(z.string().min(1)).optional(),
      serviceAccountTokens: z.boolean().default(true),
    })
    .prefault({}),
  jsonPaths: z
    .array(
      z.string().superRefine((text, ctx) => {
        try {
          new JsonPathRule(text);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message, input: text });
        }
      }),
    )
    .default([]),
  detectors: z.array(z.enum(DETECTORS)).optional(),
  decodeNestedStrings: z.boolean().default(true),
});

const slackUser = z
  .strictObject({
    slackUserId: z
      .string()
      .regex(/^[UW][A-Z0-9]{2,}$/, 'expected a Slack user id such as U012AB3CD')
      .optional(),
    email: z.email().optional(),
    subject: z.string().min(1),
    groups: z.array(z.string().min(1)).default([]),
  })
  .refine((u) => (u.slackUserId === undefined) !== (u.email === undefined), 'give exactly one of slackUserId or email');

const approval = z
  .strictObject({
    listen: z.strictObject({ host: z.string().default('127.0.0.1'), port: port.default(8444) }).prefault({}),
    publicUrl: z.url().optional(),
    gateTimeout: duration().default(2000),
    pendingTtl: duration().default(15 * 60_000),
    grantTtl: duration().default(15 * 60_000),
    retention: duration().default(10 * 60_000),
    rebuildLookback: duration().default(24 * 3_600_000),
    sweepInterval: duration().default(1000),
    breakGlassGroups: z.array(z.string().min(1)).default([]),
    store: z.enum(['auto', 'memory', 'redis']).default('auto'),
    redis: z
      .strictObject({
        url: z
          .string()
          .regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL')
          .default('redis://127.0.0.1:6379'),
        keyPrefix: z.string().default('portcullis:approval:'),
      })
      .prefault({}),
    slack: z
      .strictObject({
        enabled: z.boolean().default(false),
        apiUrl: z.url().default('https://slack.com/api'),
        botToken: z.string().default(''),
        signingSecret: z.string().default(''),
        users: z.array(slackUser).default([]),
        maxAttempts: z.number().int().min(1).max(100).default(12),
        jobLockTimeout: duration().default(30_000),
        queue: z
          .string()
          .regex(/^[A-Za-z0-9_-]+$/)
          .default('portcullis-slack'),
      })
      .refine((s) => !s.enabled || (s.botToken !== '' && s.signingSecret !== ''), 'slack.enabled needs botToken and signingSecret')
      .prefault({}),
  })
  .prefault({});

/** The configuration file's schema: unknown keys are errors everywhere. */
export const ConfigSchema = z.strictObject({
  node: z
    .strictObject({
      id: z
        .string()
        .regex(/^[A-Za-z0-9_.-]+$/)
        .optional(),
      stateDir: z.string().default('.portcullis'),
    })
    .prefault({}),
  edge: z
    .strictObject({
      listen: z.strictObject({ host: z.string().default('127.0.0.1'), port: port.default(8443) }).prefault({}),
      publicUrl: z.url().optional(),
      tls: z
        .strictObject({
          certFile: z.string().optional(),
          keyFile: z.string().optional(),
          // The CA clients should trust for certFile (kubeconfig certificate-authority-data); not a client-certificate CA.
          caBundleFile: z.string().optional(),
        })
        .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), 'certFile and keyFile go together')
        .refine(
          (t) => t.caBundleFile === undefined || t.certFile !== undefined,
          'caBundleFile names the CA of a configured certificate: set certFile and keyFile too',
        )
        .prefault({}),
      decisionTimeout: duration().default(2000),
      auditAckTimeout: duration().default(2000),
      upstreamTimeout: duration().default(60_000),
      headersTimeout: duration({ minMs: 100, maxMs: 300_000 }).default(15_000),
      maxRequestBodyBytes: z
        .number()
        .int()
        .positive()
        .default(16 * 1024 * 1024),
      decisionCache: z
        .strictObject({
          enabled: z.boolean().default(true),
          ttl: duration({ minMs: 1, maxMs: 300_000 }).default(5000),
          maxEntries: z.number().int().min(1).max(1_000_000).default(10_000),
        })
        .prefault({}),
      admin: z
        .strictObject({
          groups: z.array(z.string().min(1)).default([]),
        })
        .prefault({}),
      domain: z
        .string()
        .regex(/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'expected a lower-case DNS name such as portcullis.example.com')
        .optional(),
      // Names a path-prefix request's Host may carry besides publicUrl's host, edge.domain, loopback and the listen address (421 otherwise).
      hostNames: z
        .array(
          z
            .string()
            .regex(
              /^(([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?|[0-9a-f:.]*:[0-9a-f:.]*)$/,
              'expected a lower-case DNS name or an IP address, without a port (e.g. portcullis.internal, 10.0.0.5, fd00::5)',
            ),
        )
        .default([]),
      sessionRecording: z
        .strictObject({
          maxBytes: z
            .number()
            .int()
            .min(0)
            .default(1024 * 1024),
          flushInterval: duration().default(200),
          flushBytes: z
            .number()
            .int()
            .positive()
            .default(64 * 1024),
        })
        .prefault({}),
    })
    .prefault({}),
  bus: z
    .strictObject({
      mode: z.enum(['embedded', 'nats']).default('embedded'),
      nats: z
        .strictObject({
          servers: z.array(z.string().min(1)).min(1).default(['nats://127.0.0.1:4222']),
          user: z.string().optional(),
          password: z.string().optional(),
          token: z.string().optional(),
        })
        .prefault({}),
      auditStream: z
        .strictObject({
          maxAge: duration().default(30 * 86_400_000),
          duplicateWindow: duration().default(120_000),
          replicas: z.number().int().min(1).max(5).default(1),
        })
        .prefault({}),
    })
    .prefault({}),
  identity: z
    .strictObject({
      maxTokenLifetime: duration().default(3_600_000),
      clockSkew: duration().default(30_000),
      issuers: z.array(issuer).default([]),
      devIssuer: z
        .strictObject({
          enabled: z.boolean().default(false),
          issuerUrl: z.url().optional(),
          tokenLifetime: duration().default(300_000),
          audience: z.string().default('portcullis'),
          clients: z.array(devClient).default([]),
        })
        .prefault({}),
    })
    .prefault({}),
  connections: z.array(z.discriminatedUnion('type', [kubernetesConnection, httpConnection])).default([]),
  sandbox: z.strictObject({ enabled: z.enum(['auto', 'always', 'never']).default('auto') }).prefault({}),
  policy: z
    .strictObject({
      file: z.string().default('examples/policy.yaml'),
      source: z.enum(['kv', 'file']).optional(),
    })
    .prefault({}),
  masking: z
    .strictObject({
      profiles: z
        .record(z.string().regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, 'expected a profile name of lowercase letters, digits and "-"'), maskingProfile)
        .default({ secrets: maskingProfile.parse({}) }),
      auditProfile: z.string().default('secrets'),
      hmacKey: z.string().min(16, 'expected at least 16 characters').optional(),
      maxObjectBytes: z
        .number()
        .int()
        .min(1024)
        .default(16 * 1024 * 1024),
      requestCaptureBytes: z
        .number()
        .int()
        .min(0)
        .default(1024 * 1024),
      excerptBytes: z.number().int().min(0).default(8192),
    })
    .refine((m) => m.auditProfile in m.profiles, { message: 'masking.auditProfile must name one of masking.profiles', path: ['auditProfile'] })
    .refine((m) => m.hmacKey !== undefined || Object.values(m.profiles).every((p) => p.replacement !== 'hmac'), {
      message: 'a profile with replacement hmac needs masking.hmacKey (use ${ENV} to keep it out of the file)',
      path: ['hmacKey'],
    })
    .prefault({}),
  approval,
  audit: z
    .strictObject({
      sink: z.enum(['sqlite', 'clickhouse']).default('sqlite'),
      sqlite: z.strictObject({ file: z.string().default('audit.db') }).prefault({}),
      clickhouse: z
        .strictObject({
          url: z.url().default('http://127.0.0.1:8123'),
          database: z
            .string()
            .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
            .default('portcullis'),
          username: z.string().default('default'),
          password: z.string().default(''),
          batchSize: z.number().int().min(1).max(100_000).default(5000),
          flushInterval: duration().default(200),
          insertsInFlight: z.number().int().min(1).max(16).default(2),
        })
        .prefault({}),
      retention: z
        .string()
        .transform((text, ctx) => {
          const ms = checkDuration(text, { minMs: 86_400_000 });
          if (ms instanceof DurationError) {
            ctx.addIssue({ code: 'custom', message: `${ms.expected}, such as 400d`, input: text });
            return z.NEVER;
          }
          return { ms, text };
        })
        .optional(),
      retentionCheckInterval: duration().default(3_600_000),
      listen: z.strictObject({ host: z.string().default('127.0.0.1'), port }).optional(),
      auditorGroups: z.array(z.string().min(1)).default([]),
      /** Signed checkpoints of the hash chains' heads (see libs/audit-store/src/audit-checkpoint.ts). */
      checkpoints: z
        .strictObject({
          /** How often each role signs the heads of its chains. */
          interval: duration().default(10_000),
          /** The role's Ed25519 private key (PEM, PKCS#8), relative to node.stateDir; generated there when missing. */
          signingKeyFile: z.string().default('checkpoint-signing.key'),
          /** Public keys (PEM) whose checkpoints `audit verify` trusts, besides the public half of signingKeyFile. */
          publicKeys: z.array(z.string().min(1)).default([]),
          /** The embedded mode's append-only checkpoint file, relative to node.stateDir. */
          file: z.string().default('audit-checkpoints.jsonl'),
        })
        .prefault({}),
      // Keys the digests of audited bodies (HMAC-SHA256); '' = a key generated in node.stateDir.
      bodyHashSecret: z
        .string()
        .refine((s) => s === '' || s.length >= 32, 'expected at least 32 characters (use ${ENV} to keep it out of the file), or nothing')
        .default(''),
    })
    .refine((a) => a.listen === undefined || a.auditorGroups.length > 0, {
      message: 'audit.listen needs audit.auditorGroups: the replay API only answers members of these groups',
      path: ['auditorGroups'],
    })
    .prefault({}),
  observability: z
    .strictObject({
      /** /metrics, /healthz, /readyz over plain HTTP; absent = no listener. */
      listen: z.strictObject({ host: z.string().default('127.0.0.1'), port }).optional(),
      log: z.strictObject({ level: z.enum(['debug', 'info', 'warn', 'error']).optional() }).prefault({}),
      otlp: z
        .strictObject({
          endpoint: z.url().optional(),
          serviceName: z
            .string()
            .regex(/^[A-Za-z0-9_.-]+$/)
            .default('portcullis'),
          sampleRatio: z.number().min(0).max(1).default(1),
        })
        .prefault({}),
    })
    .prefault({}),
});

/** The raw parsed (defaults applied) configuration. */
export type ConfigInput = z.output<typeof ConfigSchema>;
export type KubernetesConnectionConfig = z.output<typeof kubernetesConnection>;
export type HttpConnectionConfig = z.output<typeof httpConnection>;
export type ConnectionConfig = KubernetesConnectionConfig | HttpConnectionConfig;
export type IssuerConfig = z.output<typeof issuer>;
export type DevClientConfig = z.output<typeof devClient>;
export type MaskingProfileConfig = z.output<typeof maskingProfile>;
export type ApprovalConfig = z.output<typeof approval>;
export type SlackUserConfig = z.output<typeof slackUser>;
