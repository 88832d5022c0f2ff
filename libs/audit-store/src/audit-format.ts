/** How `portcullis audit tail` prints rows: one human line each, or one JSON object per line. */
import { rowForJson, type AuditRow } from './audit-row.js';

// Client-controlled text (user agent, names, messages) must not drive the terminal.

const CONTROL = /[\x00-\x1f\x7f-\x9f]/g;

/** Escapes control characters, so client-controlled text cannot drive a terminal. */
export function cleanText(value: string): string {
  return value.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A byte count for people: 512 B, 1.5 kB, 3.2 MB (powers of 1000, like kubectl's units). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'] as const;
  let value = bytes;
  let unit: string = 'B';
  for (const next of units) {
    if (value < 1000) break;
    value /= 1000;
    unit = next;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
}

/** What the request addressed: `get pods/log ns/name`, `list /version`, or `POST /path` (the REQUEST column of `audit tail`). */
export function auditRowTarget(row: AuditRow): string {
  const parts: string[] = [];
  const action = row.verb || row.method;
  if (action) parts.push(action);
  if (row.resource) {
    const group = row.api_group ? `.${row.api_group}` : '';
    parts.push(`${row.resource}${group}${row.subresource ? `/${row.subresource}` : ''}`);
    const object = [row.namespace, row.name].filter(Boolean).join('/');
    if (object) parts.push(object);
  } else if (row.path) {
    parts.push(row.path);
  }
  return parts.join(' ');
}

/**
 * One line per event: time (UTC, ms), type, subject, what was asked, the decision, status,
 * bytes, duration and the Audit-Id. Empty fields are left out, so each event type shows what
 * it carries; control characters are escaped.
 */
export function formatAuditRow(row: AuditRow): string {
  const parts: string[] = [new Date(row.ts_ms).toISOString(), row.type.padEnd(22)];
  if (row.connection) parts.push(`[${row.connection}]`);
  if (row.subject) parts.push(row.subject);
  const what = auditRowTarget(row);
  if (what) parts.push(what);
  if (row.effect) parts.push(row.rule_id ? `${row.effect} (rule ${row.rule_id})` : row.effect);
  if (row.status) parts.push(String(row.status));
  if (row.reason) parts.push(row.reason);
  if (row.type === 'identity.authenticated' || row.type === 'identity.rejected') {
    if (row.issuer) parts.push(`iss ${row.issuer}`);
    if (row.client_id) parts.push(`client ${row.client_id}`);
    if (row.token_id) parts.push(`token ${row.token_id}`);
  }
  if (row.decision_message && (row.type === 'request.rejected' || row.type === 'identity.rejected')) parts.push(`"${row.decision_message}"`);
  if (row.type === 'request.completed') {
    parts.push(`in ${formatBytes(row.bytes_in)} out ${formatBytes(row.bytes_out)}`, `${row.duration_ms} ms`);
  }
  if (row.error) parts.push(`error: ${row.error}`);
  parts.push(`Audit-Id=${row.correlation_id || row.event_id}`);
  return cleanText(parts.join('  '));
}

/**
 * The JSON form: the whole row as one line (for `audit tail --json`, jq and SIEM pipes). The
 * stored bytes are left out: `payload_json` carries the same envelope.
 */
export function formatAuditRowJson(row: AuditRow): string {
  return JSON.stringify(rowForJson(row));
}
