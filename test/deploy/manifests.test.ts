/**
 * deploy/k8s: the Kustomize manifests render with kubectl's built-in kustomize and have the shape
 * a platform team expects — probes, limits, a non-root read-only security context, PDBs, pinned
 * images, a config the real schema accepts — and the RBAC is exactly what deploy/README.md says.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '@portcullis/config';
import { parsePolicy } from '@portcullis/policy-engine';
import { CLICKHOUSE_MIGRATIONS, migrationsTableDdl } from '@portcullis/audit-store';
import { NATS_DEPLOY_USERS_HEADER, natsAuthorizationConfig, natsDeployUsers, natsUserName } from '@portcullis/contracts';
import { ensureBinaries } from '../harness/services.js';
import { REPO_ROOT } from '../support/portcullis-process.js';

type Obj = Record<string, unknown>;
interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

const ROLES = ['edge', 'policy', 'approval', 'audit'] as const;

function kustomize(dir: string): Promise<Resource[]> {
  return new Promise((resolve, reject) => {
    execFile('kubectl', ['kustomize', join(REPO_ROOT, dir)], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`kubectl kustomize ${dir} failed: ${stderr || err.message}`));
        return;
      }
      const docs = parseAllDocuments(stdout);
      resolve(docs.map((d) => d.toJS() as Resource).filter((r) => r !== null));
    });
  });
}

const get = (o: unknown, ...path: string[]): unknown => path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Obj)[k] : undefined), o);
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);
/** A list of strings (RBAC's apiGroups, resources, verbs); a non-string item fails the test. */
const strs = (v: unknown): string[] => {
  const list: unknown[] = Array.isArray(v) ? v : [];
  assert.ok(
    list.every((x) => typeof x === 'string'),
    `expected a list of strings, got ${JSON.stringify(v)}`,
  );
  return list;
};

function podSpec(d: Resource): Obj {
  return get(d, 'spec', 'template', 'spec') as Obj;
}

/** Image references must name a version or a digest, never `latest` or nothing. */
function assertPinned(image: string, where: string): void {
  assert.doesNotMatch(image, /:latest(@|$)/, `${where}: image ${image} uses latest`);
  const digest = /@sha256:[0-9a-f]{64}$/.test(image);
  const tag = /:[0-9]+\.[0-9]+\.[0-9]+[^/]*$/.exec(image.replace(/@sha256:.*$/, ''));
  assert.ok(digest || tag, `${where}: image ${image} is not pinned to a version or a digest`);
}

for (const overlay of ['deploy/k8s/base', 'deploy/k8s/overlays/production']) {
  describe(`kubectl kustomize ${overlay}`, () => {
    let resources: Resource[] = [];
    const byKind = (kind: string): Resource[] => resources.filter((r) => r.kind === kind);
    const deployment = (role: string): Resource => {
      const d = byKind('Deployment').find((r) => r.metadata.name === `portcullis-${role}`);
      assert.ok(d, `a Deployment portcullis-${role}`);
      return d;
    };

    test('renders', async () => {
      resources = await kustomize(overlay);
      assert.ok(resources.length >= 15, `rendered ${resources.length} resources`);
      for (const r of resources) {
        if (r.kind !== 'Namespace' && r.kind !== 'ClusterRole' && r.kind !== 'ClusterRoleBinding') {
          assert.equal(r.metadata.namespace, 'portcullis', `${r.kind}/${r.metadata.name} is in the portcullis namespace`);
        }
      }
    });

    test('one Deployment per role, each running `serve <role>` with the shared config', () => {
      assert.deepEqual(
        byKind('Deployment')
          .map((d) => d.metadata.name)
          .sort(),
        ROLES.map((r) => `portcullis-${r}`).sort(),
      );
      for (const role of ROLES) {
        const c = arr(podSpec(deployment(role))['containers']);
        assert.equal(c.length, 1);
        assert.deepEqual(c[0]!['args'], ['serve', role, '--config', '/etc/portcullis/config/portcullis.yaml']);
      }
    });

    test('every container: readiness and liveness probes, requests and limits, non-root read-only security context', () => {
      for (const role of ROLES) {
        const d = deployment(role);
        const spec = podSpec(d);
        const podSec = (spec['securityContext'] ?? {}) as Obj;
        for (const c of [...arr(spec['containers']), ...arr(spec['initContainers'])]) {
          const where = `${role}/${String(c['name'])}`;
          assert.equal(get(c, 'readinessProbe', 'httpGet', 'path'), '/readyz', `${where} readiness probe`);
          assert.equal(get(c, 'livenessProbe', 'httpGet', 'path'), '/healthz', `${where} liveness probe`);
          for (const kind of ['requests', 'limits']) {
            for (const res of ['cpu', 'memory']) {
              assert.ok(get(c, 'resources', kind, res) !== undefined, `${where} resources.${kind}.${res}`);
            }
          }
          const sec = (c['securityContext'] ?? {}) as Obj;
          assert.equal(sec['allowPrivilegeEscalation'], false, `${where} allowPrivilegeEscalation`);
          assert.equal(sec['readOnlyRootFilesystem'], true, `${where} readOnlyRootFilesystem`);
          assert.notEqual(sec['privileged'], true, `${where} privileged`);
          assert.deepEqual(get(sec, 'capabilities', 'drop'), ['ALL'], `${where} drops every capability`);
          assert.equal(get(sec, 'capabilities', 'add'), undefined, `${where} adds no capability`);
          assert.equal(sec['runAsNonRoot'] ?? podSec['runAsNonRoot'], true, `${where} runAsNonRoot`);
          const uid = sec['runAsUser'] ?? podSec['runAsUser'];
          assert.ok(typeof uid === 'number' && uid > 0, `${where} runs as a non-zero uid`);
          assert.equal(get(sec, 'seccompProfile', 'type') ?? get(podSec, 'seccompProfile', 'type'), 'RuntimeDefault', `${where} seccomp`);
          assertPinned(String(c['image']), where);
        }
        assert.notEqual(spec['hostNetwork'], true);
        assert.notEqual(spec['hostPID'], true);
        for (const v of arr(spec['volumes'])) assert.equal(v['hostPath'], undefined, `${role}: no hostPath volume`);
      }
    });

    test('the edge: HTTPS probes, a LoadBalancer Service, an HPA and a PDB; every role has a PDB', () => {
      const edge = deployment('edge');
      const c = arr(podSpec(edge)['containers'])[0]!;
      assert.equal(get(c, 'readinessProbe', 'httpGet', 'scheme'), 'HTTPS');
      const labels = get(edge, 'spec', 'template', 'metadata', 'labels') as Record<string, string>;
      const matches = (selector: unknown): boolean =>
        selector !== undefined && Object.entries(selector as Record<string, string>).every(([k, v]) => labels[k] === v);

      const svc = byKind('Service').find((s) => matches(get(s, 'spec', 'selector')));
      assert.ok(svc, 'a Service selects the edge pods');
      assert.equal(get(svc, 'spec', 'type'), 'LoadBalancer');
      const ports = arr(get(svc, 'spec', 'ports'));
      assert.deepEqual(
        ports.map((p) => [p['port'], p['targetPort']]),
        [[443, 'https']],
      );
      assert.ok(arr(c['ports']).some((p) => p['name'] === 'https' && p['containerPort'] === 8443));

      const hpa = byKind('HorizontalPodAutoscaler').find((h) => get(h, 'spec', 'scaleTargetRef', 'name') === 'portcullis-edge');
      assert.ok(hpa, 'an HPA scales the edge');
      assert.equal(get(hpa, 'apiVersion'), 'autoscaling/v2');
      const min = Number(get(hpa, 'spec', 'minReplicas'));
      assert.ok(min >= 2 && Number(get(hpa, 'spec', 'maxReplicas')) > min);

      for (const role of ROLES) {
        const d = deployment(role);
        const podLabels = get(d, 'spec', 'template', 'metadata', 'labels') as Record<string, string>;
        const pdb = byKind('PodDisruptionBudget').find(
          (p) =>
            Object.entries((get(p, 'spec', 'selector', 'matchLabels') ?? {}) as Record<string, string>).every(([k, v]) => podLabels[k] === v) &&
            get(p, 'spec', 'selector', 'matchLabels') !== undefined,
        );
        assert.ok(pdb, `a PodDisruptionBudget covers ${role}`);
        assert.ok(get(pdb, 'spec', 'maxUnavailable') !== undefined || get(pdb, 'spec', 'minAvailable') !== undefined);
      }
    });

    test('the config the roles mount is accepted by the real schema, and the policy by the real parser', () => {
      const cm = byKind('ConfigMap').find((m) => m.metadata.name.startsWith('portcullis-config'));
      assert.ok(cm, 'the ConfigMap portcullis-config');
      const text = String(get(cm, 'data', 'portcullis.yaml'));
      const raw = parseAllDocuments(text)[0]!.toJS() as unknown;
      const config = parseConfig(raw, {
        configDir: '/etc/portcullis/config',
        env: {
          POD_NAME: 'portcullis-edge-abc',
          NATS_USER: 'portcullis-edge',
          NATS_PASSWORD: 'x',
          CLICKHOUSE_PASSWORD: '',
          AUDIT_BODY_HASH_SECRET: 'k'.repeat(44),
        },
      });
      assert.equal(config.bus.mode, 'nats');
      assert.equal(config.audit.sink, 'clickhouse');
      assert.equal(config.identity.devIssuer.enabled, false);
      assert.equal(config.sandbox.enabled, 'never');
      assert.ok(config.bus.auditStream.replicas >= 3, 'R3 audit stream in production');
      assert.equal(config.node.stateDir, '/var/lib/portcullis');
      assert.equal(config.observability.listen?.port, 9464);

      // The mounts match the paths the config names.
      for (const role of ROLES) {
        const c = arr(podSpec(deployment(role))['containers'])[0]!;
        const mounts = arr(c['volumeMounts']).map((m) => String(m['mountPath']));
        for (const path of [config.policy.file, config.node.stateDir, ...(role === 'edge' ? [config.edge.tls.certFile!] : [])]) {
          assert.ok(
            mounts.some((m) => path.startsWith(`${m}/`) || path === m),
            `${role} mounts ${path}`,
          );
        }
        assert.ok(
          arr(c['ports']).some((p) => p['containerPort'] === config.observability.listen?.port),
          `${role} exposes the observability port`,
        );
      }

      const policy = byKind('ConfigMap').find((m) => m.metadata.name.startsWith('portcullis-policy'));
      const parsed = parsePolicy(String(get(policy, 'data', 'policy.yaml')), { source: 'policy.yaml' });
      assert.ok(parsed.ok, parsed.ok ? '' : JSON.stringify(parsed.errors));
    });

    test('secrets come from Secrets: every ${VAR} in the config is set on every role, passwords only from secretKeyRef', () => {
      const cm = byKind('ConfigMap').find((m) => m.metadata.name.startsWith('portcullis-config'));
      const vars = [...String(get(cm, 'data', 'portcullis.yaml')).matchAll(/\$\{([A-Z_][A-Z0-9_]*)\}/g)].map((m) => m[1]!);
      assert.deepEqual([...new Set(vars)].sort(), ['AUDIT_BODY_HASH_SECRET', 'CLICKHOUSE_PASSWORD', 'NATS_PASSWORD', 'NATS_USER', 'POD_NAME']);
      const documentedKeys = new Set(
        [...readFileSync(join(REPO_ROOT, 'deploy/README.md'), 'utf8').matchAll(/^\| `([a-z-]+)` \| [a-z ,]+ \| `[A-Z_]+`/gm)].map((m) => m[1]!),
      );
      for (const role of ROLES) {
        const env = arr(arr(podSpec(deployment(role))['containers'])[0]!['env']);
        for (const v of vars)
          assert.ok(
            env.some((e) => e['name'] === v),
            `${role} sets ${v}`,
          );
        for (const e of env) {
          const ref = get(e, 'valueFrom', 'secretKeyRef') as Obj | undefined;
          if (ref !== undefined) {
            assert.equal(ref['name'], 'portcullis-credentials');
            assert.ok(documentedKeys.has(String(ref['key'])), `${role}: Secret key ${String(ref['key'])} is documented in deploy/README.md`);
          }
          if (/PASSWORD|TOKEN|SECRET/.test(String(e['name']))) {
            assert.ok(ref !== undefined || e['value'] === '', `${role}: ${String(e['name'])} comes from a Secret (or is empty for a role that never uses it)`);
          }
        }
      }
      assert.equal(byKind('Secret').length, 0, 'no Secret values in the manifests');
    });

    test('NATS: each role logs in as its own user (deploy/k8s/nats/portcullis-users.conf), its password from its own Secret key', () => {
      const users = natsDeployUsers();
      for (const role of ROLES) {
        const env = arr(arr(podSpec(deployment(role))['containers'])[0]!['env']);
        const user = env.find((e) => e['name'] === 'NATS_USER');
        assert.equal(user?.['value'], natsUserName(role), `${role}: NATS_USER`);
        assert.deepEqual(users.find((u) => u.user === user?.['value'])?.roles, [role], `${role}: its NATS user has exactly the ${role} role's permissions`);
        const pass = env.find((e) => e['name'] === 'NATS_PASSWORD');
        assert.equal(get(pass, 'valueFrom', 'secretKeyRef', 'key'), `nats-${role}-password`, `${role}: NATS_PASSWORD from its own Secret key`);
      }
    });

    test('RBAC: exactly the ClusterRole deploy/README.md documents, bound only to the edge service account', () => {
      const roles = [...byKind('ClusterRole'), ...byKind('Role')];
      assert.deepEqual(
        roles.map((r) => `${r.kind}/${r.metadata.name}`),
        ['ClusterRole/portcullis-impersonator'],
      );
      const rendered = arr(roles[0]!['rules']).flatMap((rule) =>
        strs(rule['apiGroups']).flatMap((g) => strs(rule['resources']).flatMap((res) => strs(rule['verbs']).map((verb) => `${g}|${res}|${verb}`))),
      );
      for (const rule of arr(roles[0]!['rules'])) {
        assert.equal(rule['resourceNames'], undefined);
        assert.equal(rule['nonResourceURLs'], undefined);
      }
      assert.deepEqual(rendered.sort(), documentedRbac().sort());

      const bindings = [...byKind('ClusterRoleBinding'), ...byKind('RoleBinding')];
      assert.equal(bindings.length, 1);
      assert.deepEqual(get(bindings[0], 'roleRef'), { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'portcullis-impersonator' });
      assert.deepEqual(get(bindings[0], 'subjects'), [{ kind: 'ServiceAccount', name: 'portcullis-edge', namespace: 'portcullis' }]);

      // Only the edge pods get a service-account token.
      for (const role of ROLES) {
        const spec = podSpec(deployment(role));
        const sa = byKind('ServiceAccount').find((s) => s.metadata.name === spec['serviceAccountName']);
        assert.ok(sa, `${role}: its ServiceAccount is in the manifests`);
        const automount = spec['automountServiceAccountToken'] ?? sa['automountServiceAccountToken'];
        assert.equal(automount, role === 'edge', `${role}: token mounted only on the edge`);
        if (role !== 'edge') assert.notEqual(spec['serviceAccountName'], 'portcullis-edge');
      }
    });
  });
}

/** Rows of the README's ClusterRole table as `group|resource|verb`. */
function documentedRbac(): string[] {
  const readme = readFileSync(join(REPO_ROOT, 'deploy/README.md'), 'utf8');
  const start = readme.indexOf('#### ClusterRole `portcullis-impersonator`');
  assert.ok(start >= 0, 'deploy/README.md has the ClusterRole section');
  const lines = readme.slice(start).split('\n').slice(1);
  const table = lines.slice(lines.findIndex((l) => l.startsWith('|')));
  const rows = table
    .slice(
      0,
      table.findIndex((l) => !l.startsWith('|')),
    )
    .slice(2);
  assert.ok(rows.length > 0);
  return rows.map((row) => {
    const cells = row
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const group = /^`([^`]*)`/.exec(cells[0]!)?.[1] ?? '';
    const resource = /^`([^`]+)`$/.exec(cells[1]!)?.[1];
    const verb = /^`([^`]+)`$/.exec(cells[2]!)?.[1];
    assert.ok(resource !== undefined && verb !== undefined, `cannot read the RBAC row ${row}`);
    return `${group === '""' ? '' : group}|${resource}|${verb}`;
  });
}

describe('deploy/README RBAC matches what the edge sends', () => {
  test('the userextras rows are exactly the Impersonate-Extra keys the edge sends (header-hygiene.ts)', () => {
    const source = readFileSync(join(REPO_ROOT, 'libs/gateway/src/header-hygiene.ts'), 'utf8');
    const sent = [...source.matchAll(/'impersonate-extra-([^']+)'/g)].map((m) => decodeURIComponent(m[1]!)).sort();
    assert.ok(sent.length > 0, 'the edge sends Impersonate-Extra headers');
    const extras = documentedRbac()
      .filter((r) => r.startsWith('authentication.k8s.io|userextras/'))
      .map((r) => r.split('|')[1]!.slice('userextras/'.length))
      .sort();
    assert.deepEqual(extras, sent);
    assert.match(source, /'impersonate-user'/);
    assert.match(source, /'impersonate-group'/);
    assert.doesNotMatch(source, /'impersonate-uid'/, 'uids are not impersonated (no RBAC row for them)');
  });
});

describe('deploy/clickhouse/audit-replicated.sql', () => {
  const sql = readFileSync(join(REPO_ROOT, 'deploy/clickhouse/audit-replicated.sql'), 'utf8');
  const columns = (ddl: string): string[] =>
    ddl
      .slice(ddl.indexOf('(') + 1, ddl.lastIndexOf(') ENGINE'))
      .split('\n')
      .map((l) => l.trim().replace(/,$/, ''))
      .filter((l) => l !== '');
  const statement = (table: string): string => {
    const start = sql.indexOf(`CREATE TABLE IF NOT EXISTS portcullis.${table} ON CLUSTER portcullis (`);
    assert.ok(start >= 0, `the replicated DDL creates ${table}`);
    return sql.slice(start, sql.indexOf(';', start));
  };

  test('has the same columns, partitioning and key as the migrations, on Replicated engines', () => {
    const migration = CLICKHOUSE_MIGRATIONS[0]!.statements('portcullis')[0]!;
    const replicated = statement('audit_events');
    assert.deepEqual(columns(replicated), columns(migration));
    for (const clause of [/PARTITION BY .*/, /ORDER BY .*/, /SETTINGS .*/]) {
      assert.equal(clause.exec(replicated)?.[0], clause.exec(migration)?.[0]);
    }
    assert.match(replicated, /ENGINE = ReplicatedReplacingMergeTree\('[^']+', '\{replica\}'\)/);
    const migrations = statement('schema_migrations');
    assert.deepEqual(columns(migrations), columns(migrationsTableDdl('portcullis')));
    assert.match(migrations, /ReplicatedReplacingMergeTree/);
    // Every migration the writers would run is recorded as applied.
    for (const m of CLICKHOUSE_MIGRATIONS) {
      assert.ok(sql.includes(`VALUES (${m.id}, '${m.name}', now())`), `migration ${m.id} recorded`);
    }
  });
});

describe('deploy/k8s/nats/portcullis-users.conf', () => {
  const file = join(REPO_ROOT, 'deploy/k8s/nats/portcullis-users.conf');

  test('is what natsRolePermissions generates (node scripts/nats-users.mjs), with no secret in it', () => {
    const text = readFileSync(file, 'utf8');
    assert.equal(
      text,
      `${NATS_DEPLOY_USERS_HEADER}${natsAuthorizationConfig(natsDeployUsers())}`,
      'regenerate: node scripts/nats-users.mjs > deploy/k8s/nats/portcullis-users.conf',
    );
    assert.doesNotMatch(text, /password: "/, 'passwords are $VAR references');
  });

  test('nats-server accepts it when the password variables are set, and refuses to start without them', async () => {
    const { 'nats-server': natsServer } = await ensureBinaries(['nats-server']);
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-nats-users-'));
    try {
      copyFileSync(file, join(dir, 'portcullis-users.conf'));
      writeFileSync(join(dir, 'nats.conf'), 'listen: "127.0.0.1:4222"\ninclude "portcullis-users.conf"\n');
      const passwords = Object.fromEntries(natsDeployUsers().map((u) => [(u.password as { env: string }).env, 'test-password']));
      const check = (env: NodeJS.ProcessEnv): Promise<{ ok: boolean; out: string }> =>
        new Promise((resolve) =>
          execFile(natsServer, ['-t', '-c', join(dir, 'nats.conf')], { env }, (err, stdout, stderr) =>
            resolve({ ok: err === null, out: `${stdout}${stderr}` }),
          ),
        );
      const valid = await check({ PATH: process.env['PATH'], ...passwords });
      assert.ok(valid.ok, valid.out);
      const missing = await check({ PATH: process.env['PATH'] });
      assert.equal(missing.ok, false);
      assert.match(missing.out, /PORTCULLIS_EDGE_NATS_PASSWORD/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
