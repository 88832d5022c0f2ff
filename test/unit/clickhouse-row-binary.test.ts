/**
 * The RowBinary encoder against an independent reference (varint length + UTF-8 for String,
 * little-endian integers, count + items for Array(String)): ClickHouse reads these bytes as
 * they are, so a wrong length prefix would shift every later column of the batch.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AUDIT_COLUMNS, encodeRowBinary, type AuditRow } from '@portcullis/audit-store/pure';

const column = (name: string): (typeof AUDIT_COLUMNS)[number] => {
  const c = AUDIT_COLUMNS.find((x) => x.name === name);
  assert.ok(c, name);
  return c;
};

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
const str = (s: string): number[] => {
  const b = [...Buffer.from(s, 'utf8')];
  return [...varint(b.length), ...b];
};
const le = (v: number, bytes: number): number[] => Array.from({ length: bytes }, (_, i) => Math.floor(v / 2 ** (8 * i)) % 256);

describe('RowBinary encoding of audit rows', () => {
  const strings = [
    '',
    'list',
    'a'.repeat(42),
    'a'.repeat(43),
    'a'.repeat(200),
    'ünïcødé',
    'abc-ß',
    'é'.repeat(42),
    '€'.repeat(42),
    '🦀'.repeat(21),
    `${'x'.repeat(41)}é`,
    '\u0000\t\n"\\',
    'lone \ud800 surrogate',
  ];
  for (const s of strings) {
    test(`String ${JSON.stringify(s.length > 20 ? `${s.slice(0, 12)}…(${s.length})` : s)}`, () => {
      const row = { subject: s } as unknown as AuditRow;
      assert.deepEqual([...encodeRowBinary([row], [column('subject')])], str(s));
    });
  }

  test('one row of mixed columns, twice: every value in column order, nothing between rows', () => {
    const row = {
      subject: 'bot',
      groups: ['bots', 'ünï', ''],
      status: 503,
      forwarded: 1,
      duration_ms: 70_000,
      ts_ms: 1_764_000_000_123,
      payload_pb: new Uint8Array([0x0a, 0x00, 0xff]),
    } as unknown as AuditRow;
    const cols = ['subject', 'groups', 'status', 'forwarded', 'duration_ms', 'ts_ms', 'payload_pb'].map(column);
    const one = [
      ...str('bot'),
      3,
      ...str('bots'),
      ...str('ünï'),
      ...str(''),
      ...le(503, 2),
      1,
      ...le(70_000, 4),
      ...le(1_764_000_000_123, 8),
      3,
      0x0a,
      0x00,
      0xff,
    ];
    assert.deepEqual([...encodeRowBinary([row, row], cols)], [...one, ...one]);
  });
});
