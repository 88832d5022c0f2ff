/**
 * OCSF export: one **API Activity** record (class 6003, OCSF 1.1) per request, merged from the
 * request's events (received or rejected, decided, completed), and one per non-request event
 * (a retention run); other event types (session frames, approvals) are not API activity and are
 * left to the ndjson export. The field-by-field mapping is documented in docs/ocsf.md; the ClickHouse
 * view `audit_requests_ocsf` computes the same flat columns ({@link OcsfFlat}) in SQL, and the
 * integration tests hold the two equal.
 */
import type { AuditRow } from './audit-row.js';

/** OCSF API Activity activity ids. */
export const OcsfActivity = { Unknown: 0, Create: 1, Read: 2, Update: 3, Delete: 4, Other: 99 } as const;
export type OcsfActivity = (typeof OcsfActivity)[keyof typeof OcsfActivity];

const ACTIVITY_NAME: Record<OcsfActivity, string> = { 0: 'Unknown', 1: 'Create', 2: 'Read', 3: 'Update', 4: 'Delete', 99: 'Other' };
const STATUS_NAME = { 0: 'Unknown', 1: 'Success', 2: 'Failure' } as const;
const SEVERITY_NAME = { 1: 'Informational', 3: 'Medium' } as const;

/** The OCSF schema version the records follow. */
export const OCSF_VERSION = '1.1.0';

const VERB_ACTIVITY: Readonly<Record<string, OcsfActivity>> = {
  create: 1,
  get: 2,
  list: 2,
  watch: 2,
  update: 3,
  patch: 3,
  delete: 4,
  deletecollection: 4,
};
const METHOD_ACTIVITY: Readonly<Record<string, OcsfActivity>> = { POST: 1, GET: 2, HEAD: 2, PUT: 3, PATCH: 3, DELETE: 4 };

/** Activity of a request: from the Kubernetes verb, else the HTTP method. */
export function ocsfActivity(verb: string, method: string, retention: boolean): OcsfActivity {
  if (retention) return OcsfActivity.Delete;
  if (verb !== '') return VERB_ACTIVITY[verb] ?? OcsfActivity.Other;
  return METHOD_ACTIVITY[method] ?? OcsfActivity.Unknown;
}

/**
 * The flat form: one column per OCSF field (dots become `_`), exactly the columns of the
 * ClickHouse view `audit_requests_ocsf`, in the same order.
 */
export interface OcsfFlat {
  metadata_correlation_uid: string;
  time: number;
  end_time: number;
  class_uid: number;
  category_uid: number;
  activity_id: number;
  type_uid: number;
  severity_id: number;
  status_id: number;
  status_code: string;
  status_detail: string;
  metadata_uid: string;
  metadata_event_codes: string[];
  actor_user_name: string;
  actor_user_groups: string[];
  actor_app_name: string;
  actor_session_uid: string;
  actor_session_issuer: string;
  actor_session_credential_uid: string;
  api_operation: string;
  api_service_name: string;
  api_version: string;
  api_group_name: string;
  src_endpoint_ip: string;
  http_request_http_method: string;
  http_request_user_agent: string;
  http_request_url_path: string;
  resource_type: string;
  resource_name: string;
  resource_namespace: string;
  decision_effect: string;
  decision_rule_id: string;
  decision_policy_version: string;
  decision_mask_profile: string;
  approval_id: string;
  bytes_in: number;
  bytes_out: number;
  duration_ms: number;
  node_id: string;
}

const REQUEST_TYPES = new Set(['request.received', 'request.rejected']);

/** Merges one request's rows (any order) into the flat OCSF form; rows of other types are kept generic. */
export function ocsfFlat(rows: readonly AuditRow[]): OcsfFlat {
  const first = rows[0];
  if (first === undefined) throw new RangeError('ocsfFlat needs at least one row');
  const req = rows.find((r) => REQUEST_TYPES.has(r.type));
  const dec = rows.find((r) => r.type === 'request.decided');
  const rej = rows.find((r) => r.type === 'request.rejected');
  const com = rows.find((r) => r.type === 'request.completed');
  const ret = rows.find((r) => r.type === 'audit.retention_applied');
  const effect = dec?.effect ?? '';
  const verb = req?.verb ?? '';
  const method = req?.method ?? '';
  const activity = ocsfActivity(verb, method, ret !== undefined);
  const failed = rej !== undefined || (effect !== '' && effect !== 'allow') || (com !== undefined && (com.status >= 400 || com.error !== ''));
  const statusId = failed ? 2 : com !== undefined || ret !== undefined ? 1 : 0;
  const status = rej?.status ?? com?.status ?? 0;
  const detail =
    rej !== undefined
      ? rej.decision_message
      : effect !== '' && effect !== 'allow'
        ? (dec?.decision_message ?? '')
        : (com?.error ?? ret?.decision_message ?? '');
  const resourceType = req === undefined || req.resource === '' ? '' : req.subresource === '' ? req.resource : `${req.resource}/${req.subresource}`;
  return {
    metadata_correlation_uid: first.correlation_id,
    time: Math.min(...rows.map((r) => r.ts_ms)),
    end_time: Math.max(...rows.map((r) => r.ts_ms)),
    class_uid: 6003,
    category_uid: 6,
    activity_id: activity,
    type_uid: 600300 + activity,
    severity_id: failed ? 3 : 1,
    status_id: statusId,
    status_code: status > 0 ? String(status) : '',
    status_detail: detail,
    metadata_uid: first.correlation_id,
    metadata_event_codes: [...new Set(rows.map((r) => r.type))].sort(),
    actor_user_name: req?.subject ?? '',
    actor_user_groups: req?.groups ?? [],
    actor_app_name: req?.client_id ?? '',
    actor_session_uid: req?.session_id ?? '',
    actor_session_issuer: req?.issuer ?? '',
    actor_session_credential_uid: req?.token_id ?? '',
    api_operation: ret !== undefined ? 'audit.retention' : verb !== '' ? verb : method,
    api_service_name: req?.connection ?? first.connection,
    api_version: req?.api_version ?? '',
    api_group_name: req?.api_group ?? '',
    src_endpoint_ip: req?.source_ip ?? '',
    http_request_http_method: method,
    http_request_user_agent: req?.user_agent ?? '',
    http_request_url_path: req?.path ?? '',
    resource_type: resourceType,
    resource_name: req?.name ?? '',
    resource_namespace: req?.namespace ?? '',
    decision_effect: effect,
    decision_rule_id: dec?.rule_id ?? '',
    decision_policy_version: dec?.policy_version ?? '',
    decision_mask_profile: dec?.mask_profile ?? '',
    approval_id: dec?.approval_id ?? '',
    bytes_in: com?.bytes_in ?? 0,
    bytes_out: com?.bytes_out ?? 0,
    duration_ms: com?.duration_ms ?? 0,
    node_id: (req ?? first).node_id,
  };
}

/** The OCSF API Activity record (nested, as a SIEM ingests it) of a flat row. */
export function ocsfRecord(f: OcsfFlat, productVersion: string = '0.1.0'): Record<string, unknown> {
  const activity = f.activity_id as OcsfActivity;
  const resource: Record<string, unknown> = {};
  if (f.resource_type !== '') resource['type'] = f.resource_type;
  if (f.resource_name !== '') resource['name'] = f.resource_name;
  if (f.resource_namespace !== '') resource['namespace'] = f.resource_namespace;
  if (f.api_group_name !== '') resource['group'] = { name: f.api_group_name };
  return {
    class_uid: f.class_uid,
    class_name: 'API Activity',
    category_uid: f.category_uid,
    category_name: 'Application Activity',
    activity_id: f.activity_id,
    activity_name: ACTIVITY_NAME[activity] ?? 'Unknown',
    type_uid: f.type_uid,
    type_name: `API Activity: ${ACTIVITY_NAME[activity] ?? 'Unknown'}`,
    time: f.time,
    end_time: f.end_time,
    duration: f.duration_ms,
    severity_id: f.severity_id,
    severity: SEVERITY_NAME[f.severity_id as 1 | 3] ?? 'Unknown',
    status_id: f.status_id,
    status: STATUS_NAME[f.status_id as 0 | 1 | 2] ?? 'Unknown',
    ...(f.status_code !== '' ? { status_code: f.status_code } : {}),
    ...(f.status_detail !== '' ? { status_detail: f.status_detail } : {}),
    message:
      `${f.actor_user_name || 'unknown'} ${f.api_operation} ${[f.resource_type, f.resource_namespace, f.resource_name].filter(Boolean).join(' ') || f.http_request_url_path}`.trim(),
    metadata: {
      version: OCSF_VERSION,
      product: { name: 'Portcullis', vendor_name: 'Portcullis', version: productVersion },
      uid: f.metadata_uid,
      correlation_uid: f.metadata_correlation_uid,
      event_code: f.metadata_event_codes.join(','),
      log_name: 'audit_events',
    },
    actor: {
      user: { name: f.actor_user_name, uid: f.actor_user_name, type: 'Service', groups: f.actor_user_groups.map((name) => ({ name })) },
      app_name: f.actor_app_name,
      session: { uid: f.actor_session_uid, issuer: f.actor_session_issuer, credential_uid: f.actor_session_credential_uid },
    },
    api: {
      operation: f.api_operation,
      service: { name: f.api_service_name },
      version: f.api_version,
      request: { uid: f.metadata_correlation_uid },
      response: {
        ...(f.status_code !== '' ? { code: Number(f.status_code) } : {}),
        ...(f.status_detail !== '' ? { message: f.status_detail } : {}),
      },
    },
    src_endpoint: { ip: f.src_endpoint_ip },
    dst_endpoint: { svc_name: f.api_service_name },
    http_request: { http_method: f.http_request_http_method, user_agent: f.http_request_user_agent, url: { path: f.http_request_url_path } },
    resources: Object.keys(resource).length > 0 ? [resource] : [],
    cloud: { provider: 'Portcullis' },
    unmapped: {
      decision: { effect: f.decision_effect, rule_id: f.decision_rule_id, policy_version: f.decision_policy_version, mask_profile: f.decision_mask_profile },
      approval_id: f.approval_id,
      bytes_in: f.bytes_in,
      bytes_out: f.bytes_out,
      node_id: f.node_id,
    },
  };
}

/** Columns of {@link OcsfFlat}, in view order. */
export const OCSF_FLAT_COLUMNS = [
  'metadata_correlation_uid',
  'time',
  'end_time',
  'class_uid',
  'category_uid',
  'activity_id',
  'type_uid',
  'severity_id',
  'status_id',
  'status_code',
  'status_detail',
  'metadata_uid',
  'metadata_event_codes',
  'actor_user_name',
  'actor_user_groups',
  'actor_app_name',
  'actor_session_uid',
  'actor_session_issuer',
  'actor_session_credential_uid',
  'api_operation',
  'api_service_name',
  'api_version',
  'api_group_name',
  'src_endpoint_ip',
  'http_request_http_method',
  'http_request_user_agent',
  'http_request_url_path',
  'resource_type',
  'resource_name',
  'resource_namespace',
  'decision_effect',
  'decision_rule_id',
  'decision_policy_version',
  'decision_mask_profile',
  'approval_id',
  'bytes_in',
  'bytes_out',
  'duration_ms',
  'node_id',
] as const satisfies readonly (keyof OcsfFlat)[];

/**
 * Groups a time-ordered row stream into requests with bounded memory: a request is emitted when
 * its completion (or rejection) arrives; requests still open when more than `maxOpen` are
 * pending, or at the end, are emitted as they are (partial: status Unknown).
 */
export class OcsfRequestMerger {
  readonly #open = new Map<string, AuditRow[]>();
  constructor(
    private readonly emit: (flat: OcsfFlat) => void,
    private readonly maxOpen: number = 100_000,
  ) {}

  push(row: AuditRow): void {
    if (row.type === 'audit.retention_applied') {
      this.emit(ocsfFlat([row]));
      return;
    }
    // Not API activity (e.g. session frames): the ndjson export carries those.
    if (!row.type.startsWith('request.')) return;
    const key = row.correlation_id || row.event_id;
    let rows = this.#open.get(key);
    if (rows === undefined) {
      rows = [];
      this.#open.set(key, rows);
    }
    rows.push(row);
    if (row.type === 'request.completed' || row.type === 'request.rejected') {
      this.#open.delete(key);
      this.emit(ocsfFlat(rows));
    } else if (this.#open.size > this.maxOpen) {
      const [oldest, oldestRows] = this.#open.entries().next().value!;
      this.#open.delete(oldest);
      this.emit(ocsfFlat(oldestRows));
    }
  }

  /** Emits every request still open. */
  end(): void {
    for (const rows of this.#open.values()) this.emit(ocsfFlat(rows));
    this.#open.clear();
  }
}
