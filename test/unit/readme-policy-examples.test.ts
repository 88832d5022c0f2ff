/** The README's worked policy examples are a real, valid policy that decides as the README says. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { evaluate } from '@portcullis/policy-engine';
import { kube, mustParse, repoRoot, who } from './policy-engine.fixtures.js';

const readme = readFileSync(`${repoRoot}README.md`, 'utf8');
const block = /```yaml\n# worked-examples\n([\s\S]*?)```/.exec(readme)?.[1];

describe('README worked policy examples', () => {
  assert.ok(block !== undefined, 'README has the "# worked-examples" yaml block');
  const policy = mustParse(block, 'README.md');
  // Wednesday 25 November 2026; Paris is UTC+1.
  const workingHours = new Date('2026-11-25T10:00:00Z');
  const evening = new Date('2026-11-25T19:30:00Z');
  const reporter = who({ sub: 'reporter-bot', groups: ['bots'] });

  const cases: { name: string; who: ReturnType<typeof who>; line: string; at?: Date; expect: [string, string]; mask?: string; quorum?: number }[] = [
    { name: 'the read-only bot reads', who: reporter, line: 'list pods -n prod --on prod', expect: ['allow', 'reporter-read-only'] },
    { name: 'the read-only bot cannot write', who: reporter, line: 'patch deployments.apps web -n prod --on prod', expect: ['deny', 'default-deny'] },
    { name: 'the read-only bot reads only prod', who: reporter, line: 'get pods -n default --on sandbox', expect: ['deny', 'default-deny'] },
    {
      name: 'a bot reading a Secret gets it masked',
      who: reporter,
      line: 'get secrets db -n prod --on prod',
      expect: ['allow', 'reporter-read-only'],
      mask: 'secrets',
    },
    {
      name: 'deleting a namespace needs two sre approvers',
      who: who({ sub: 'alice', groups: ['sre'] }),
      line: 'delete namespaces staging --on prod',
      expect: ['require_approval', 'delete-namespace-two-sre'],
      quorum: 2,
    },
    {
      name: 'exec in prod in working hours needs an approval',
      who: who({ sub: 'alice', groups: ['sre'] }),
      line: 'create pods/exec web -n prod --on prod',
      at: workingHours,
      expect: ['require_approval', 'prod-exec-working-hours'],
    },
    {
      name: 'exec in prod in the evening is denied',
      who: who({ sub: 'alice', groups: ['sre'] }),
      line: 'create pods/exec web -n prod --on prod',
      at: evening,
      expect: ['deny', 'default-deny'],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const d = evaluate(policy, c.who, kube(c.line), c.at ?? workingHours);
      assert.deepEqual([d.effect, d.ruleId], c.expect);
      assert.equal(d.maskProfile, c.mask ?? '');
      if (c.quorum !== undefined) assert.equal(d.approval?.quorum, c.quorum);
    });
  }
});
