import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { subjectMatches } from '@portcullis/bus/pure';
import { sharedNatsUrl } from '../harness/services.js';
import { uniqueToken } from '../support/bus-conformance.js';
import { SUBJECT_CASES } from '../support/subject-match-cases.js';

let nc: NatsConnection;
before(async () => {
  nc = await connect({ servers: [await sharedNatsUrl()], name: uniqueToken('subject-match') });
});
after(async () => {
  await nc.close();
});

test('a real nats-server routes every well-formed row of the table as subjectMatches says', async () => {
  // Each row under its own unique root: `root.<pattern>` and `root.<subject>` match exactly when
  // the row's pattern and subject do, and no row sees another row's message.
  const rows = SUBJECT_CASES.filter((c) => c.wellFormed);
  const delivered = rows.map(() => [] as string[]);
  const roots = rows.map(() => uniqueToken('sm'));
  const subs = rows.map((c, i) => nc.subscribe(`${roots[i]}.${c.pattern}`, { callback: (_err, msg) => void delivered[i]!.push(msg.subject) }));
  await nc.flush();
  rows.forEach((c, i) => nc.publish(`${roots[i]}.${c.subject}`));
  // One connection, one server: the flush's PONG comes after every message published before it.
  await nc.flush();
  for (const s of subs) s.unsubscribe();
  const disagree = rows
    .map((c, i) => ({ c, byServer: delivered[i]!.length > 0 }))
    .filter(({ c, byServer }) => byServer !== c.matches || subjectMatches(c.pattern, c.subject) !== byServer)
    .map(({ c, byServer }) => `${JSON.stringify(c.pattern)} ~ ${JSON.stringify(c.subject)}: nats-server ${byServer}, table ${c.matches}`);
  assert.deepEqual(disagree, []);
  assert.ok(rows.length >= 30, `${rows.length} rows checked against the server`);
});
