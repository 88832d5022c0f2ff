/**
 * The policy language, `portcullis.dev/v1` `Policy`, as a zod schema. It is the single source of
 * truth: `policy.schema.json` is generated from it ({@link policyJsonSchema}) and a unit test keeps
 * the committed file identical. The schema checks shape only; cross-field rules (duplicate ids,
 * glob syntax, durations, time zones, mask profiles, approval settings) are checked by
 * `parsePolicy` with the same error format.
 */
import { z } from 'zod';
import { DURATION_PATTERN, policyDurationError } from './duration.js';
import { globError } from './glob.js';
import { DAY_PATTERN, HOURS_PATTERN, parseHours, timeZoneError } from './time-window.js';

/** The only `apiVersion` this engine reads. */
export const POLICY_API_VERSION = 'portcullis.dev/v1';
/** The only `kind` this engine reads. */
export const POLICY_KIND = 'Policy';

/** Effects a rule can have. `mask` only adds a masking profile and never lets a request through by itself. */
export const RuleEffect = {
  Allow: 'allow',
  Deny: 'deny',
  RequireApproval: 'require_approval',
  Mask: 'mask',
} as const;
export type RuleEffect = (typeof RuleEffect)[keyof typeof RuleEffect];

/** Approval scopes: one approval per request, or one approval opening a window of `ttl`. */
export const ApprovalScope = { Once: 'once', Window: 'window' } as const;
export type ApprovalScope = (typeof ApprovalScope)[keyof typeof ApprovalScope];

/** Builds a strict object whose unknown-key error names the key and lists the allowed ones. */
function strict<T extends z.ZodRawShape>(shape: T, where: string) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown key in ${where}; allowed keys: ${allowed}` : undefined),
  });
}

const identifier = z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9._:-]{0,126}[A-Za-z0-9])?$/, {
  error: 'must be 1-128 letters, digits, ".", "_", ":" or "-", starting and ending with a letter or digit',
});

// Glob syntax is checked here so it is reported together with every other shape error.
const glob = z
  .string()
  .max(512)
  .check((ctx) => {
    const error = globError(ctx.value);
    if (error !== undefined) ctx.issues.push({ code: 'custom', message: error, input: ctx.value });
  });
const globs = (description: string) => z.array(glob).min(1).meta({ description });
// The pattern is the grammar (it goes into the JSON Schema); the check adds the policy's limits.
const duration = z
  .string()
  .regex(DURATION_PATTERN, { error: (issue) => policyDurationError(String(issue.input)) })
  .check((ctx) => {
    const error = DURATION_PATTERN.test(ctx.value) ? policyDurationError(ctx.value) : undefined;
    if (error !== undefined) ctx.issues.push({ code: 'custom', message: error, input: ctx.value });
  });

const httpMatch = strict(
  {
    methods: z
      .array(z.string().regex(/^[A-Za-z]+$/, { error: 'must be an HTTP method such as GET' }))
      .min(1)
      .meta({ description: 'HTTP methods (case-insensitive). Any entry matches.' }),
    paths: globs('HTTP path globs, matched against the path after /http/<connection>. Any entry matches.'),
  },
  'match.http',
)
  .partial()
  .meta({ description: 'Generic HTTP attributes. Only HTTP requests can match a rule that sets this.' });

const timeMatch = strict(
  {
    days: z
      .array(z.string().regex(DAY_PATTERN, { error: 'must be a day (mon, tue, …, sun) or a range such as mon-fri' }))
      .min(1)
      .meta({ description: 'Days of the week, or ranges such as mon-fri.' }),
    hours: z
      .string()
      .regex(HOURS_PATTERN, { error: 'must be "HH:MM-HH:MM", e.g. "09:00-18:00"' })
      .check((ctx) => {
        if (HOURS_PATTERN.test(ctx.value) && parseHours(ctx.value) === undefined) {
          ctx.issues.push({ code: 'custom', message: 'start and end must differ', input: ctx.value });
        }
      })
      .meta({ description: 'Local time range HH:MM-HH:MM, end exclusive; start > end wraps past midnight.' }),
    timezone: z
      .string()
      .min(1)
      .check((ctx) => {
        const error = timeZoneError(ctx.value);
        if (error !== undefined) ctx.issues.push({ code: 'custom', message: error, input: ctx.value });
      })
      .meta({ description: 'IANA time zone, default UTC.' }),
  },
  'match.time',
)
  .partial()
  .meta({ description: 'Time window, evaluated against the decision clock in the given zone.' });

/** The `match` block of a rule. Omitted fields match anything; entries within a field are ORed; fields are ANDed. */
export const MatchSchema = strict(
  {
    subjects: globs('Token subject (sub) globs.'),
    groups: globs('Group globs; matches when any of the identity groups matches any entry.'),
    clientIds: globs('OAuth client id (azp / client_id) globs.'),
    issuers: globs('Token issuer globs.'),
    audiences: globs('Audience globs; matches when any token audience matches any entry.'),
    scopes: z.array(z.string().min(1)).min(1).meta({ description: 'Exact scopes; the token must carry ALL of them (the one AND-within-a-field).' }),
    claims: z
      .record(z.string().min(1), z.union([glob, z.array(glob).min(1)]))
      .meta({ description: 'Other token claims: claim name -> glob or list of globs. Every listed claim must match.' }),
    connections: globs('Connection name globs (the <connection> of /k8s/<connection>/ or /http/<connection>/).'),
    verbs: globs('Kubernetes verbs (get, list, watch, create, update, patch, delete, deletecollection, …).'),
    apiGroups: globs('Kubernetes API groups; "" is the core group. Resource requests only.'),
    resources: globs('Resources, "resource" or "resource/subresource" (pods, pods/log, pods/exec, pods/*). Resource requests only.'),
    namespaces: globs('Namespace globs; "*" is any namespace, "" or "-" is cluster-scoped. Resource requests only.'),
    names: globs('Object name globs. Resource requests only.'),
    nonResourcePaths: globs('Non-resource URL path globs (/version, /api*, /apis*, /healthz). Non-resource requests only.'),
    http: httpMatch,
    time: timeMatch,
  },
  'match',
).partial();

/** Approval settings of a `require_approval` rule (or `defaults.approval`). */
export const ApprovalSchema = strict(
  {
    approverGroups: z.array(z.string().min(1)).min(1).meta({ description: 'Groups whose members may approve.' }),
    quorum: z.number().int().min(1).max(16).meta({ description: 'Distinct approvers needed (default 1).' }),
    scope: z.enum(['once', 'window']).meta({ description: 'once: this request only; window: matching requests for ttl.' }),
    ttl: duration.meta({ description: 'How long a window approval lasts (scope: window only).' }),
    wait: duration.meta({ description: 'How long the edge holds the request waiting for a decision (default 30s).' }),
    reasonRequired: z.boolean().meta({ description: 'Whether approvers must give a reason (default false).' }),
    channel: z.string().min(1).meta({ description: 'Where to ask, e.g. a Slack channel.' }),
  },
  'approval',
).partial();

/** One rule. */
export const RuleSchema = strict(
  {
    id: identifier.meta({ description: 'Unique rule id; every decision names the rule that made it.' }),
    description: z.string().optional(),
    match: MatchSchema.optional().meta({ description: 'What the rule applies to; omitted matches every request.' }),
    effect: z.enum(['allow', 'deny', 'require_approval', 'mask']).meta({
      description: 'deny > require_approval > allow when several rules match; mask only adds a masking profile.',
    }),
    message: z.string().min(1).optional().meta({ description: 'Message shown to the client (deny, require_approval).' }),
    mask: z.string().min(1).optional().meta({
      description: 'Masking profile applied to the response when the request is let through.',
    }),
    approval: ApprovalSchema.optional(),
  },
  'rules[]',
);

/** A whole policy document. */
export const PolicyDocumentSchema = strict(
  {
    apiVersion: z.literal(POLICY_API_VERSION),
    kind: z.literal(POLICY_KIND),
    metadata: strict(
      {
        name: identifier,
        version: z.string().min(1).max(128).meta({ description: 'Policy version; every decision carries it.' }),
        description: z.string().optional(),
      },
      'metadata',
    ),
    maskingProfiles: z.array(identifier).optional().meta({ description: 'Masking profile names rules may use; when present, mask must name one of them.' }),
    defaults: strict({ approval: ApprovalSchema.optional() }, 'defaults').optional().meta({ description: 'Defaults merged into every require_approval rule.' }),
    rules: z.array(RuleSchema).meta({ description: 'Rules in document order; no match means deny (default-deny).' }),
  },
  'the policy document',
).meta({ title: 'Portcullis policy', description: 'Portcullis access policy (portcullis.dev/v1 Policy).' });

/** A policy document as written (after schema validation). */
export type PolicyDocument = z.infer<typeof PolicyDocumentSchema>;
/** A rule as written. */
export type RuleDocument = z.infer<typeof RuleSchema>;
/** A rule's match block as written. */
export type MatchDocument = z.infer<typeof MatchSchema>;
/** Approval settings as written. */
export type ApprovalDocument = z.infer<typeof ApprovalSchema>;

/** The JSON Schema (draft 2020-12) of a policy document, generated from {@link PolicyDocumentSchema}. */
export function policyJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(PolicyDocumentSchema, { target: 'draft-2020-12' }),
    $id: 'https://portcullis.dev/schemas/policy.v1.json',
  };
}

/** {@link policyJsonSchema} as the exact text of the committed `policy.schema.json`. */
export function policyJsonSchemaText(): string {
  return `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
}
