import { z } from 'zod';
import { parseDuration } from './duration.js';

const duration = (what: string) =>
  z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration such as 500ms, 30s, 5m, 1h or 30d for ${what}`, input: text });
      return z.NEVER;
    }
    return ms;
  });

/** Connection names become URL path segments and NATS subject tokens. */
const connectionName = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'expected a DNS-label name: lowercase letters, digits and "-"');

const port = z.number().int().min(0).max(65535);

const devClient = z.strictObject({
  id: z.string().min(1),
  secret: z.string().min(8, 'expected a client secret of at least 8 characters'),
  subject: z.string().min(1).optional(),
  groups: z.array(z.string()).default([]),
  scopes: z.array(z.string()).default([]),
});

const issuer = z.strictObject({
  issuer: z.url(),
  audiences: z.array(z.string().min(1)).min(1),
  jwksUri: z.url().optional(),
  algorithms: z.array(z.enum(['RS256', 'PS256', 'ES256', 'EdDSA'])).default(['RS256', 'PS256', 'ES256', 'EdDSA']),
  subjectClaim: z.string().default('sub'),
  groupsClaim: z.string().default('groups'),
  clientIdClaim: z.string().default('client_id'),
  scopeClaim: z.string().default('scope'),
});

const kubernetesConnection = z.strictObject({
  name: connectionName,
  type: z.literal('kubernetes'),
  server: z.url(),
  caFile: z.string().optional(),
  tokenFile: z.string().optional(),
  insecureSkipTlsVerify: z.boolean().default(false),
  impersonate: z.boolean().default(true),
  impersonationPrefix: z.string().default('portcullis:'),
});

const httpConnection = z.strictObject({
  name: connectionName,
  type: z.literal('http'),
  server: z.url(),
  caFile: z.string().optional(),
  tokenFile: z.string().optional(),
  insecureSkipTlsVerify: z.boolean().default(false),
});

/** The configuration file's schema: unknown keys are errors everywhere. */
export const ConfigSchema = z.strictObject({
  node: z
    .strictObject({
      id: z.string().regex(/^[A-Za-z0-9_.-]+$/).optional(),
      stateDir: z.string().default('.portcullis'),
    })
    .prefault({}),
  edge: z
    .strictObject({
      listen: z.strictObject({ host: z.string().default('127.0.0.1'), port: port.default(8443) }).prefault({}),
      publicUrl: z.url().optional(),
      tls: z
        .strictObject({ certFile: z.string().optional(), keyFile: z.string().optional() })
        .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), 'certFile and keyFile go together')
        .prefault({}),
      decisionTimeout: duration('edge.decisionTimeout').default(2000),
      auditAckTimeout: duration('edge.auditAckTimeout').default(2000),
      upstreamTimeout: duration('edge.upstreamTimeout').default(60_000),
      maxRequestBodyBytes: z.number().int().positive().default(16 * 1024 * 1024),
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
          maxAge: duration('bus.auditStream.maxAge').default(30 * 86_400_000),
          duplicateWindow: duration('bus.auditStream.duplicateWindow').default(120_000),
          replicas: z.number().int().min(1).max(5).default(1),
        })
        .prefault({}),
    })
    .prefault({}),
  identity: z
    .strictObject({
      maxTokenLifetime: duration('identity.maxTokenLifetime').default(3_600_000),
      clockSkew: duration('identity.clockSkew').default(30_000),
      issuers: z.array(issuer).default([]),
      devIssuer: z
        .strictObject({
          enabled: z.boolean().default(false),
          issuerUrl: z.url().optional(),
          tokenLifetime: duration('identity.devIssuer.tokenLifetime').default(300_000),
          audience: z.string().default('portcullis'),
          clients: z.array(devClient).default([]),
        })
        .prefault({}),
    })
    .prefault({}),
  connections: z.array(z.discriminatedUnion('type', [kubernetesConnection, httpConnection])).default([]),
  sandbox: z
    .strictObject({ enabled: z.enum(['auto', 'always', 'never']).default('auto') })
    .prefault({}),
  policy: z.strictObject({ file: z.string().default('examples/policy.yaml') }).prefault({}),
  audit: z
    .strictObject({
      sink: z.enum(['sqlite', 'clickhouse']).default('sqlite'),
      sqlite: z.strictObject({ file: z.string().default('audit.db') }).prefault({}),
      clickhouse: z
        .strictObject({
          url: z.url().default('http://127.0.0.1:8123'),
          database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('portcullis'),
          username: z.string().default('default'),
          password: z.string().default(''),
          batchSize: z.number().int().min(1).max(100_000).default(5000),
          flushInterval: duration('audit.clickhouse.flushInterval').default(200),
        })
        .prefault({}),
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
          serviceName: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('portcullis'),
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
