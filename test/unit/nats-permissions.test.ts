/**
 * The per-role NATS permissions (natsRolePermissions): the shape the security suite relies on, and
 * that a user running several roles keeps what each of them needs.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BusRoles, natsAuthorizationConfig, natsInboxPrefix, natsPermissionsFor, natsRolePermissions } from '@portcullis/contracts';

describe('natsRolePermissions', () => {
  test('each role subscribes to its own inbox prefix and to no other inbox', () => {
    for (const role of BusRoles) {
      const inboxes = natsRolePermissions(role).subscribe.allow.filter((s) => s.startsWith('_INBOX'));
      assert.deepEqual(inboxes, [`${natsInboxPrefix(role)}.>`], role);
    }
  });

  test('the edge may not write the policy bucket, decide approvals or change, delete or purge streams', () => {
    const edge = natsRolePermissions('edge');
    // Consumers only on the checkpoint stream: every role reads the signed heads (audit verify with its config), none may change them.
    const forbidden =
      /^\$KV\.|^portcullis\.approval\.decided|STREAM\.(UPDATE|DELETE|PURGE|MSG\.DELETE)|CONSUMER\.(?!(CREATE|INFO|DELETE|MSG\.NEXT)\.PORTCULLIS_CHECKPOINTS\.)|^\$JS\.ACK|^>$|^\$JS\.API\.>$/;
    assert.deepEqual(
      edge.publish.allow.filter((s) => forbidden.test(s)),
      [],
    );
    assert.ok(edge.publish.deny.includes('audit.*.approval.>'), 'approval events are denied although audit.> is allowed');
    assert.equal(edge.allowResponses, false);
  });

  test('only the operator may write the policy bucket', () => {
    for (const role of BusRoles) {
      const writes = natsRolePermissions(role).publish.allow.some((s) => s.startsWith('$KV.portcullis_policy'));
      assert.equal(writes, role === 'operator', role);
    }
  });

  test("a user running several roles keeps what each needs: one role's deny never removes another's allow", () => {
    const both = natsPermissionsFor(['edge', 'approval']);
    assert.ok(both.publish.allow.includes('audit.*.approval.>'));
    assert.ok(!both.publish.deny.includes('audit.*.approval.>'));
    assert.ok(both.allowResponses);
    const all = natsPermissionsFor(['edge', 'policy', 'approval', 'audit']);
    assert.ok(!all.publish.deny.some((d) => all.publish.allow.includes(d)));
  });

  test('the rendered config writes $VAR references for passwords from the environment, never a value', () => {
    const text = natsAuthorizationConfig([{ user: 'portcullis-edge', password: { env: 'EDGE_PW' }, roles: ['edge'] }]);
    assert.match(text, /password: \$EDGE_PW\n/);
    assert.match(text, /subscribe: \{ allow: \["_INBOX_edge\.>"/);
  });
});
