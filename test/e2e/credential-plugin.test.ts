/**
 * `portcullis kubeconfig` for machines and its exec credential plugin (`portcullis credential`),
 * with real kubectl through an embedded gateway that trusts a real OIDC provider over HTTPS (the
 * fake provider: discovery, JWKS, a client credentials token endpoint) besides its development
 * issuer:
 * - --oidc-client-credentials: the secret is read from an environment variable at run time, never
 *   written into the kubeconfig; N kubectl calls cost one token request and one
 *   identity.authenticated event (the token comes from the plugin's disk cache, 0600 in 0700);
 * - the development issuer (the README's tour): N kubectl calls, one token, one event;
 * - --token-file: the file is read on every call (a rotated token is used at once), an expired
 *   one is an error naming the file;
 * - the cache: refreshed before expiry, a corrupt or world-readable file ignored and replaced;
 * - --client and the other flags are checked when the kubeconfig is written, not inside kubectl.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadOrCreateDevTls } from '@portcullis/tls';
import { freePort } from '../harness/services.js';
import { kubectl, REPO_ROOT, runPortcullis, startPortcullis, tempDir, writeConfig, type PortcullisProcess } from '../support/portcullis-process.js';
import { eventually } from '../support/eventually.js';
import { startFakeOidcProvider, type FakeOidcProvider, type ProviderKey } from '../support/fake-oidc-provider.js';

type Row = Record<string, unknown>;

const IDP_SECRET = 'idp-secret-deployer-7f3a9c';
const CALLS = 5;

describe('portcullis kubeconfig for machines, and the credential plugin', { timeout: 240_000 }, () => {
  const dir = tempDir('credential-plugin');
  // The plugin's cache ($XDG_CACHE_HOME/portcullis): this test's own. kubectl and the plugin inherit it.
  const xdg = join(dir, 'xdg-cache');
  process.env['XDG_CACHE_HOME'] = xdg;
  process.env['IDP_SECRET'] = IDP_SECRET;
  const kubeCache = join(dir, 'kube-cache');
  let gateway: PortcullisProcess;
  let idp: FakeOidcProvider;
  let key: ProviderKey;
  let config: string;
  let idpCaFile: string;

  before(async () => {
    const tls = await loadOrCreateDevTls(join(dir, 'idp-tls'), ['127.0.0.1', 'localhost']);
    idpCaFile = join(dir, 'idp-ca.pem');
    writeFileSync(idpCaFile, tls.caPem);
    idp = await startFakeOidcProvider(tls);
    key = await idp.newKey('k1');
    idp.published = [key];
    idp.clients.set('deployer', { secret: IDP_SECRET, claims: { groups: ['bots'] } });
    const port = await freePort();
    config = writeConfig(dir, 'portcullis.yaml', {
      node: { stateDir: join(dir, 'state') },
      edge: { listen: { host: '127.0.0.1', port } },
      identity: {
        issuers: [{ issuer: idp.issuer, audiences: ['portcullis'], caFile: idpCaFile }],
        devIssuer: {
          enabled: true,
          clients: [{ id: 'ci-bot', secret: 'dev-secret-ci-bot', subject: 'ci-bot', groups: ['bots'], scopes: ['read'] }],
        },
      },
      policy: { file: join(REPO_ROOT, 'examples', 'policy.yaml') },
      approval: { listen: { host: '127.0.0.1', port: await freePort() } },
    });
    gateway = startPortcullis(['start', '--config', config]);
    await gateway.waitFor(/Stop with Ctrl-C/, 60_000);
  });

  after(async () => {
    const code = await gateway?.stop();
    await idp?.close();
    assert.equal(code, 0, gateway.output().slice(-2000));
  });

  async function kubeconfigFile(name: string, args: string[]): Promise<{ file: string; text: string }> {
    const r = await runPortcullis(['kubeconfig', '--connection', 'sandbox', ...args, '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    const file = join(dir, name);
    writeFileSync(file, r.stdout);
    return { file, text: r.stdout };
  }

  async function rows(): Promise<Row[]> {
    const r = await runPortcullis(['audit', 'tail', '-o', 'json', '--limit', '10000', '--since', '1h', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout
      .trim()
      .split('\n')
      .filter((l) => l)
      .map((l) => JSON.parse(l) as Row);
  }

  /**
   * Runs `kubectl get pods -n <namespace>` CALLS times (a new kubectl process each time, as a CI
   * script would) and returns the token ids of those requests and the identity.authenticated rows
   * for them, once all CALLS requests are in the audit log.
   */
  async function callsAndEvents(kubeconfig: string, namespace: string): Promise<{ tokenIds: Set<string>; announced: Row[] }> {
    for (let i = 0; i < CALLS; i++) {
      const r = await kubectl(kubeconfig, kubeCache, ['get', 'pods', '-n', namespace]);
      assert.equal(r.code, 0, r.stderr);
    }
    return eventually(`${CALLS} requests for pods in ${namespace} in the audit log`, async () => {
      const all = await rows();
      const received = all.filter((r) => r['type'] === 'request.received' && r['resource'] === 'pods' && r['namespace'] === namespace);
      if (received.length < CALLS) return undefined;
      const tokenIds = new Set(received.map((r) => String(r['token_id'])));
      return { tokenIds, announced: all.filter((r) => r['type'] === 'identity.authenticated' && tokenIds.has(String(r['token_id']))) };
    });
  }

  test('--oidc-client-credentials: no secret in the kubeconfig; N kubectl calls, one token request, one identity.authenticated', async () => {
    const { file, text } = await kubeconfigFile('idp.kubeconfig', ['--oidc-client-credentials', '--client', 'deployer', '--client-secret-env', 'IDP_SECRET']);
    assert.doesNotMatch(text, new RegExp(IDP_SECRET), 'the secret is not in the kubeconfig');
    assert.doesNotMatch(text, /token:/, 'no token in the kubeconfig');
    assert.match(text, /- credential\n/);
    assert.match(text, /- --client-secret-env\n\s+- IDP_SECRET\n/);
    const before = { tokens: idp.tokenRequests() };
    const { tokenIds, announced } = await callsAndEvents(file, 'default');
    assert.equal(idp.tokenRequests() - before.tokens, 1, 'one token request for all the calls: the rest came from the cache');
    assert.equal(tokenIds.size, 1, 'every call used the same token');
    assert.equal(announced.length, 1, `one identity.authenticated for ${CALLS} calls`);
    assert.equal(announced[0]!['subject'], 'deployer');
    // The cache: a 0700 directory of 0600 files, holding the token but no secret.
    const tokensDir = join(xdg, 'portcullis', 'tokens');
    assert.equal(statSync(join(xdg, 'portcullis')).mode & 0o777, 0o700);
    assert.equal(statSync(tokensDir).mode & 0o777, 0o700);
    const files = readdirSync(tokensDir);
    assert.ok(files.length >= 1);
    for (const f of files) {
      assert.equal(statSync(join(tokensDir, f)).mode & 0o777, 0o600, f);
      assert.doesNotMatch(readFileSync(join(tokensDir, f), 'utf8'), new RegExp(IDP_SECRET));
    }
  });

  test('the development issuer (the README tour): N kubectl calls, one token, one identity.authenticated', async () => {
    const { file } = await kubeconfigFile('dev.kubeconfig', ['--client', 'ci-bot']);
    const { tokenIds, announced } = await callsAndEvents(file, 'kube-system');
    assert.equal(tokenIds.size, 1, 'every call used the same cached token');
    assert.equal(announced.length, 1, `one identity.authenticated for ${CALLS} calls`);
    assert.equal(announced[0]!['subject'], 'ci-bot');
  });

  test('the plugin: a token near its expiry is replaced, a corrupt or world-readable cache file is ignored and rewritten', async () => {
    const args = ['credential', '--issuer', idp.issuer, '--client', 'deployer', '--ca-file', idpCaFile, '--client-secret-env', 'IDP_SECRET'];
    const run = async (): Promise<{ token: string; expiration: string }> => {
      const r = await runPortcullis(args);
      assert.equal(r.code, 0, r.stderr);
      const cred = JSON.parse(r.stdout) as { apiVersion: string; kind: string; status: { token: string; expirationTimestamp: string } };
      assert.equal(cred.apiVersion, 'client.authentication.k8s.io/v1');
      assert.equal(cred.kind, 'ExecCredential');
      return { token: cred.status.token, expiration: cred.status.expirationTimestamp };
    };
    const first = await run();
    const count = idp.tokenRequests();
    const discoveries = idp.discoveryFetches();
    const tokensDir = join(xdg, 'portcullis', 'tokens');
    // This key's file: the one holding the token just printed.
    const file = readdirSync(tokensDir)
      .map((f) => join(tokensDir, f))
      .find((f) => readFileSync(f, 'utf8').includes(first.token));
    assert.ok(file, 'the token is cached');
    assert.equal((await run()).token, first.token, 'served from the cache');
    assert.equal(idp.tokenRequests(), count);
    // kubectl is told to come back when the refresh is due: 5 min token, so 30 s (a tenth) before exp.
    const exp = (JSON.parse(Buffer.from(first.token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000;
    const due = Date.parse(first.expiration);
    assert.ok(Math.abs(due - (exp - 30_000)) < 2_000, `expirationTimestamp ${first.expiration}, exp ${new Date(exp).toISOString()}`);

    const cached = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const rewrite = (fields: Record<string, unknown>): void => writeFileSync(file, JSON.stringify({ ...cached, ...fields }), { mode: 0o600 });
    // A one-hour token with two minutes left: fresh (the margin is 60 s at most).
    rewrite({ issuedAtMs: Date.now() - 3_600_000, expiresAtMs: Date.now() + 120_000 });
    assert.equal((await run()).token, first.token);
    assert.equal(idp.tokenRequests(), count);
    // With 30 s left it is due: a new token is fetched and cached.
    rewrite({ issuedAtMs: Date.now() - 3_600_000, expiresAtMs: Date.now() + 30_000 });
    const refreshed = await run();
    assert.notEqual(refreshed.token, first.token);
    assert.equal(idp.tokenRequests(), count + 1);
    assert.match(readFileSync(file, 'utf8'), new RegExp(refreshed.token.slice(-20)));

    writeFileSync(file, '{"v":1,"accessToken":'); // corrupt
    const afterCorrupt = await run();
    assert.equal(idp.tokenRequests(), count + 2, 'a corrupt cache file is a miss');
    assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { accessToken: string }).accessToken, afterCorrupt.token, 'and is rewritten');
    assert.equal(statSync(file).mode & 0o777, 0o600);

    chmodSync(file, 0o644); // readable by others: not trusted
    await run();
    assert.equal(idp.tokenRequests(), count + 3, 'a world-readable cache file is a miss');
    assert.equal(statSync(file).mode & 0o777, 0o600, 'and is replaced by a 0600 file');
    assert.equal(idp.discoveryFetches(), discoveries, 'three token requests, no new discovery: the document is cached too');
  });

  test('the plugin: errors name what is wrong, exit non-zero, and never show the secret', async () => {
    const base = ['credential', '--issuer', idp.issuer, '--client', 'deployer', '--ca-file', idpCaFile, '--audience', 'other-aud'];
    const noEnv = await runPortcullis([...base, '--client-secret-env', 'NO_SUCH_VAR_FOR_PORTCULLIS']);
    assert.equal(noEnv.code, 1);
    assert.match(noEnv.stderr, /no client secret for deployer: the environment variable NO_SUCH_VAR_FOR_PORTCULLIS is not set/);
    assert.equal(noEnv.stdout, '');

    const wrong = await runPortcullis([...base, '--client-secret-env', 'WRONG_SECRET'], { env: { WRONG_SECRET: 'not-the-secret-123' } });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /the token endpoint https:\/\/127\.0\.0\.1:\d+\/token refused client deployer \(HTTP 401, invalid_client/);
    assert.doesNotMatch(wrong.stderr, /not-the-secret-123/);

    const missingFile = await runPortcullis([...base, '--client-secret-file', join(dir, 'nope')]);
    assert.equal(missingFile.code, 1);
    assert.match(missingFile.stderr, /cannot read the client secret file .*nope: ENOENT/);

    const badArgs = await runPortcullis(['credential', '--token-file', 'x', '--client', 'deployer']);
    assert.equal(badArgs.code, 2);
    assert.match(badArgs.stderr, /--token-file cannot be combined with --client/);
  });

  test('--token-file: read on every call (a rotated token is used at once); an expired token is an error naming the file', async () => {
    const tokenFile = join(dir, 'sa-token');
    const mint = (sub: string, expInS: number): Promise<string> =>
      idp.sign(key, {
        iss: idp.issuer,
        sub,
        aud: 'portcullis',
        groups: ['bots'],
        iat: Math.floor(Date.now() / 1000) - 10,
        exp: Math.floor(Date.now() / 1000) + expInS,
      });
    writeFileSync(tokenFile, `${await mint('sa-one', 600)}\n`);
    const { file, text } = await kubeconfigFile('file.kubeconfig', ['--token-file', tokenFile]);
    assert.doesNotMatch(text, /token:/);
    assert.match(text, new RegExp(`- --token-file\\n\\s+- ${tokenFile}\\n`));
    const one = await kubectl(file, kubeCache, ['get', 'pods', '-n', 'prod']);
    assert.equal(one.code, 0, one.stderr);
    writeFileSync(tokenFile, `${await mint('sa-two', 600)}\n`);
    const two = await kubectl(file, kubeCache, ['get', 'pods', '-n', 'staging']);
    assert.equal(two.code, 0, two.stderr);
    const subjects = await eventually('both token-file requests in the audit log', async () => {
      const all = await rows();
      const bySubject = (ns: string): unknown =>
        all.find((r) => r['type'] === 'request.received' && r['resource'] === 'pods' && r['namespace'] === ns && String(r['subject']).startsWith('sa-'))?.[
          'subject'
        ];
      const s = [bySubject('prod'), bySubject('staging')];
      return s.every((x) => x !== undefined) ? s : undefined;
    });
    assert.deepEqual(subjects, ['sa-one', 'sa-two'], 'the second kubectl call read the rotated file');

    writeFileSync(tokenFile, `${await mint('sa-old', -60)}\n`);
    const expired = await kubectl(file, kubeCache, ['get', 'pods']);
    assert.notEqual(expired.code, 0);
    assert.match(expired.stderr, new RegExp(`portcullis credential: the token in ${tokenFile} expired at `));
  });

  test('kubeconfig checks the client and the flags of the chosen mode now, not inside kubectl', async () => {
    const stranger = join(dir, 'stranger-token');
    writeFileSync(
      stranger,
      `${Buffer.from('{"alg":"ES256"}').toString('base64url')}.${Buffer.from('{"iss":"https://idp.invalid"}').toString('base64url')}.sig`,
    );
    const disabled = writeConfig(dir, 'no-dev.yaml', {
      node: { stateDir: join(dir, 'state') },
      edge: { listen: { host: '127.0.0.1', port: 1 } },
      identity: { issuers: [{ issuer: idp.issuer, audiences: ['portcullis'], caFile: idpCaFile }] },
    });
    const cases: [string[], number, RegExp][] = [
      [['--client', 'nobody'], 1, /--client nobody: the development issuer has no such client \(identity\.devIssuer\.clients in .*: ci-bot\)/],
      [[], 2, /--client: name one of the development issuer's clients \(identity\.devIssuer\.clients: ci-bot\)/],
      [['--client', 'ci-bot', '--scope', 'admin'], 1, /--scope admin: not allowed for client ci-bot \(its scopes: read\)/],
      [['--client', 'ci-bot', '--client-secret-env', 'X'], 2, /--client-secret-env does not apply to the development issuer/],
      [['--token-file', stranger, '--client', 'ci-bot'], 2, /--client does not apply to --token-file/],
      [['--token-file', stranger], 1, /the token in .*stranger-token is issued by "https:\/\/idp\.invalid", which this gateway does not trust/],
      [['--oidc-client-credentials'], 2, /--oidc-client-credentials needs --client: the client id registered at the identity provider/],
      [
        ['--oidc-client-credentials', '--client', 'deployer', '--issuer', 'https://other.example'],
        1,
        /--issuer https:\/\/other\.example is not in identity\.issuers/,
      ],
      [
        ['--oidc-client-credentials', '--client', 'deployer', '--audience', 'prod'],
        1,
        /--audience prod: connection sandbox accepts tokens for portcullis only/,
      ],
      [
        ['--oidc-client-credentials', '--token-file', stranger, '--client', 'deployer'],
        2,
        /--token-file and --oidc-client-credentials are two ways to get a token: give one/,
      ],
      [
        ['--oidc-client-credentials', '--client', 'deployer', '--client-secret-env', 'A', '--client-secret-file', 'b'],
        2,
        /--client-secret-env and --client-secret-file are two places for one secret/,
      ],
    ];
    const runs = await Promise.all(cases.map(([args]) => runPortcullis(['kubeconfig', '--connection', 'sandbox', ...args, '--config', config])));
    runs.forEach((r, i) => {
      const [args, code, message] = cases[i]!;
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.equal(r.stdout, '', `${args.join(' ')}: no kubeconfig on stdout`);
    });
    const off = await runPortcullis(['kubeconfig', '--connection', 'sandbox', '--client', 'ci-bot', '--config', disabled]);
    assert.equal(off.code, 1);
    assert.match(
      off.stderr,
      /the development issuer is disabled in .*no-dev\.yaml .*--oidc-client-credentials --client ID, or from a file with --token-file PATH/,
    );
  });
});
