/**
 * What clients are told to trust for a configured edge certificate: the configured CA bundle, the
 * certificate itself when it is self-signed, or nothing (system roots) when it chains to a public
 * or corporate CA — checked on the pure rule and on `portcullis kubeconfig`'s output.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import {
  clientTrustFor,
  ClientTrustError,
  ClientTrustSource,
  createCertificateAuthority,
  issueServerCertificate,
  type CertificateKeyPair,
} from '@portcullis/tls';
import { parseConfig, type PortcullisConfig } from '@portcullis/config';
import { kubeconfigCommand } from '../../../apps/cli/src/commands/kubeconfig.command.js';

const FILES = { cert: 'tls.crt', caBundle: 'ca.pem' };

describe('clientTrustFor: what a kubeconfig carries for a configured certificate', () => {
  let corpCa: CertificateKeyPair;
  let corpLeaf: CertificateKeyPair;
  let selfSigned: CertificateKeyPair;
  let otherCa: CertificateKeyPair;
  let lookalikeCa: CertificateKeyPair;
  let lookalikeLeaf: CertificateKeyPair;

  before(async () => {
    corpCa = await createCertificateAuthority('Example Corp Issuing CA');
    corpLeaf = await issueServerCertificate(corpCa, { hosts: ['gateway.example.com', '127.0.0.1'] });
    // A self-signed certificate (what `openssl req -x509` makes): its own issuer, signed by its own key.
    selfSigned = await createCertificateAuthority('gateway.example.com');
    otherCa = await createCertificateAuthority('Some Other CA');
    // A CA named exactly like the leaf it issues: issuer == subject as text, yet not self-signed.
    lookalikeCa = await createCertificateAuthority('127.0.0.1');
    lookalikeLeaf = await issueServerCertificate(lookalikeCa, { hosts: ['127.0.0.1'] });
  });

  test('a configured CA bundle is handed out as it is', () => {
    const trust = clientTrustFor(corpLeaf.certPem, corpCa.certPem, FILES);
    assert.equal(trust.source, ClientTrustSource.CaBundle);
    assert.equal(trust.caPem, corpCa.certPem);
  });

  test('a bundle with several CAs is accepted when one of them issued the certificate', () => {
    const bundle = `${otherCa.certPem}${corpCa.certPem}`;
    assert.equal(clientTrustFor(corpLeaf.certPem, bundle, FILES).caPem, bundle);
  });

  test('a bundle that did not issue the certificate stops the start with a message naming both files', () => {
    assert.throws(
      () => clientTrustFor(corpLeaf.certPem, otherCa.certPem, FILES),
      (err: unknown) => err instanceof ClientTrustError && /ca\.pem: none of its certificates issued tls\.crt/.test(err.message),
    );
  });

  test('a bundle without a certificate in it is refused', () => {
    assert.throws(() => clientTrustFor(corpLeaf.certPem, 'not a pem', FILES), /ca\.pem: no PEM certificate/);
  });

  test('a self-signed certificate is its own trust anchor', () => {
    const trust = clientTrustFor(selfSigned.certPem, undefined, FILES);
    assert.equal(trust.source, ClientTrustSource.SelfSigned);
    assert.equal(trust.caPem?.trim(), selfSigned.certPem.trim());
  });

  test('a certificate from a public or corporate CA: no CA handed out (system roots)', () => {
    const trust = clientTrustFor(corpLeaf.certPem, undefined, FILES);
    assert.equal(trust.source, ClientTrustSource.SystemRoots);
    assert.equal(trust.caPem, undefined);
  });

  test('issuer and subject spelled alike is not enough: the signature must verify with its own key', () => {
    assert.equal(clientTrustFor(lookalikeLeaf.certPem, undefined, FILES).source, ClientTrustSource.SystemRoots);
  });

  describe('portcullis kubeconfig', () => {
    const dir = mkdtempSync(join(tmpdir(), 'client-trust-'));
    after(() => rmSync(dir, { recursive: true, force: true }));

    const configWith = (leaf: CertificateKeyPair, bundle?: string): PortcullisConfig => {
      writeFileSync(join(dir, 'tls.crt'), leaf.certPem);
      writeFileSync(join(dir, 'tls.key'), leaf.keyPem, { mode: 0o600 });
      if (bundle !== undefined) writeFileSync(join(dir, 'ca.pem'), bundle);
      return parseConfig(
        {
          node: { stateDir: join(dir, 'state') },
          edge: {
            publicUrl: 'https://gateway.example.com',
            tls: { certFile: 'tls.crt', keyFile: 'tls.key', ...(bundle !== undefined ? { caBundleFile: 'ca.pem' } : {}) },
          },
          connections: [{ name: 'prod', type: 'kubernetes', server: 'https://10.0.0.1:6443' }],
          identity: { devIssuer: { enabled: true, clients: [{ id: 'ci-bot', secret: 'dev-secret-ci-bot' }] } },
        },
        { configDir: dir, env: {}, source: join(dir, 'portcullis.yaml') },
      );
    };
    const caData = (yaml: string): unknown => {
      const kc = parseYaml(yaml) as { clusters: { cluster: Record<string, unknown> }[] };
      return kc.clusters[0]!.cluster['certificate-authority-data'];
    };
    const b64 = (pem: string): string => Buffer.from(pem).toString('base64');

    test('caBundleFile: the bundle is the certificate-authority-data', () => {
      const out = kubeconfigCommand(configWith(corpLeaf, corpCa.certPem), 'portcullis.yaml', { connection: 'prod', client: 'ci-bot' });
      assert.equal(caData(out.kubeconfig), b64(corpCa.certPem));
      assert.deepEqual(out.notices, []);
    });

    test('self-signed: the certificate is the certificate-authority-data', () => {
      const out = kubeconfigCommand(configWith(selfSigned), 'portcullis.yaml', { connection: 'prod', client: 'ci-bot' });
      assert.equal(
        Buffer.from(String(caData(out.kubeconfig)), 'base64')
          .toString('utf8')
          .trim(),
        selfSigned.certPem.trim(),
      );
      assert.deepEqual(out.notices, []);
    });

    test('a CA-issued certificate without a bundle: no certificate-authority-data, and the output says why', () => {
      const out = kubeconfigCommand(configWith(corpLeaf), 'portcullis.yaml', { connection: 'prod', client: 'ci-bot' });
      assert.equal(caData(out.kubeconfig), undefined);
      assert.match(
        out.notices.join('\n'),
        /certificate-authority-data left out: edge\.tls\.certFile .*tls\.crt\) is not self-signed and no edge\.tls\.caBundleFile/,
      );
      assert.match(out.kubeconfig, /^# certificate-authority-data left out/);
      assert.match(out.kubeconfig, /server: https:\/\/gateway\.example\.com\/k8s\/prod/);
    });
  });
});
