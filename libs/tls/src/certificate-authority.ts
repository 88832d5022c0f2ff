// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata polyfill first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
// The WebCrypto names @peculiar/x509's typings use, declared globally (types only: erased).
import type {} from './webcrypto-globals.js';

/** A PEM-encoded certificate and its PKCS#8 PEM private key. */
export interface CertificateKeyPair {
  /** X.509 certificate, PEM (`-----BEGIN CERTIFICATE-----`). */
  readonly certPem: string;
  /** PKCS#8 private key, PEM (`-----BEGIN PRIVATE KEY-----`). */
  readonly keyPem: string;
}

/** Options for {@link issueServerCertificate}. */
export interface ServerCertificateOptions {
  /** DNS names and IP addresses the certificate must be valid for; IPs go into IP SANs. */
  readonly hosts: readonly string[];
  /** Validity in days from now (default 365). */
  readonly days?: number;
}

/** Options for {@link issueClientCertificate}. */
export interface ClientCertificateOptions {
  /** Subject CN; Kubernetes reads it as the user name. */
  readonly commonName: string;
  /** Subject O values; Kubernetes reads them as groups. */
  readonly organizations?: readonly string[];
  /** Validity in days from now (default 365). */
  readonly days?: number;
}

// An explicit provider keeps x509 off its process-global crypto registry.
const crypto: Crypto = webcrypto;
const EC_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
// Backdating tolerates small clock skew between the issuer and the verifier.
const BACKDATE_MS = 5 * 60 * 1000;
const CA_DAYS = 3650;

/**
 * Creates a self-signed ECDSA P-256 certificate authority valid for ten years.
 *
 * @param commonName - subject CN of the CA, e.g. `"portcullis dev CA"`.
 */
export async function createCertificateAuthority(commonName: string): Promise<CertificateKeyPair> {
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: [{ CN: [commonName] }],
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + CA_DAYS * DAY_MS),
      keys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(keys.privateKey) };
}

/**
 * Issues a TLS server certificate (serverAuth) signed by `ca`, with every host as a SAN.
 *
 * @param ca - the issuing CA from {@link createCertificateAuthority}.
 * @param options - hosts (DNS names or IP literals) and validity.
 */
export async function issueServerCertificate(ca: CertificateKeyPair, options: ServerCertificateOptions): Promise<CertificateKeyPair> {
  if (options.hosts.length === 0) throw new TypeError('issueServerCertificate: hosts must not be empty');
  const names: x509.JsonGeneralName[] = options.hosts.map((host) => ({
    type: isIP(host) === 0 ? 'dns' : 'ip',
    value: host,
  }));
  return issueLeaf(ca, {
    subject: [{ CN: [options.hosts[0] ?? 'localhost'] }],
    days: options.days ?? 365,
    usage: x509.ExtendedKeyUsage.serverAuth,
    keyUsage: x509.KeyUsageFlags.digitalSignature,
    extra: [new x509.SubjectAlternativeNameExtension(names, false)],
  });
}

/**
 * Issues a TLS client certificate (clientAuth) signed by `ca`; CN is the user and O the groups.
 *
 * @param ca - the issuing CA from {@link createCertificateAuthority}.
 * @param options - subject and validity.
 */
export async function issueClientCertificate(ca: CertificateKeyPair, options: ClientCertificateOptions): Promise<CertificateKeyPair> {
  const subject: x509.JsonName = [{ CN: [options.commonName] }];
  for (const org of options.organizations ?? []) subject.push({ O: [org] });
  return issueLeaf(ca, {
    subject,
    days: options.days ?? 365,
    usage: x509.ExtendedKeyUsage.clientAuth,
    keyUsage: x509.KeyUsageFlags.digitalSignature,
    extra: [],
  });
}

interface LeafSpec {
  readonly subject: x509.JsonName;
  readonly days: number;
  readonly usage: x509.ExtendedKeyUsage;
  readonly keyUsage: x509.KeyUsageFlags;
  readonly extra: x509.Extension[];
}

async function issueLeaf(ca: CertificateKeyPair, spec: LeafSpec): Promise<CertificateKeyPair> {
  if (!(spec.days > 0)) throw new RangeError(`certificate validity must be positive days, got ${spec.days}`);
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importKeyPem(ca.keyPem);
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: spec.subject,
      issuer: caCert.subjectName,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + spec.days * DAY_MS),
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(spec.keyUsage, true),
        new x509.ExtendedKeyUsageExtension([spec.usage], false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey, false, crypto),
        ...spec.extra,
      ],
    },
    crypto,
  );
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(keys.privateKey) };
}

async function generateKeyPair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify']);
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return `${x509.PemConverter.encode(der, 'PRIVATE KEY')}\n`;
}

async function importKeyPem(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return crypto.subtle.importKey('pkcs8', der, EC_ALGORITHM, false, ['sign']);
}

// 16 random bytes with the top bit cleared keeps the DER INTEGER positive (RFC 5280 §4.1.2.2).
function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}
