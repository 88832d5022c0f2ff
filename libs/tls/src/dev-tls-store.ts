import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { createCertificateAuthority, issueServerCertificate, type CertificateKeyPair } from './certificate-authority.js';

/** Material returned by {@link loadOrCreateDevTls}. */
export interface DevTls {
  /** The development CA certificate (PEM); put it in kubeconfigs and `https` `ca` options. */
  readonly caPem: string;
  /** The server certificate (PEM) covering the requested hosts. */
  readonly certPem: string;
  /** The server private key (PKCS#8 PEM). */
  readonly keyPem: string;
  /** True when anything (CA or server certificate) was written by this call. */
  readonly created: boolean;
}

/** File names inside the development TLS directory. */
export const DEV_TLS_FILES = {
  ca: 'ca.pem',
  caKey: 'ca-key.pem',
  server: 'server.pem',
  serverKey: 'server-key.pem',
} as const;

/** Union of the development TLS file names. */
export type DevTlsFile = (typeof DEV_TLS_FILES)[keyof typeof DEV_TLS_FILES];

const DAY_MS = 24 * 60 * 60 * 1000;
const RENEW_BEFORE_MS = 7 * DAY_MS;
const SERVER_DAYS = 365;
const LOCK_FILE = '.lock';
const LOCK_WAIT_MS = 15_000;
const LOCK_STALE_MS = 60_000;

/**
 * Loads the development CA and server certificate from `dir`, creating them on first use.
 *
 * The CA is kept across calls so kubeconfigs that embed it stay valid; the server certificate
 * is re-issued from that CA when it misses a requested host or expires within seven days.
 * Files are written atomically (temp file + rename); keys are mode 0600, `dir` mode 0700.
 *
 * @param dir - directory holding `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`.
 * @param hosts - DNS names and IP literals the server certificate must cover.
 */
export async function loadOrCreateDevTls(dir: string, hosts: readonly string[]): Promise<DevTls> {
  if (hosts.length === 0) throw new TypeError('loadOrCreateDevTls: hosts must not be empty');
  const createdDir = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (createdDir !== undefined) await chmod(dir, 0o700);
  return withLock(dir, async () => {
    let created = false;
    let ca = await readCa(dir);
    if (ca === undefined) {
      ca = await createCertificateAuthority('portcullis development CA');
      await writeAtomic(join(dir, DEV_TLS_FILES.caKey), ca.keyPem, 0o600);
      await writeAtomic(join(dir, DEV_TLS_FILES.ca), ca.certPem, 0o644);
      created = true;
    }
    let server = await readServer(dir, ca, hosts);
    if (server === undefined) {
      server = await issueServerCertificate(ca, { hosts: uniqueHosts(hosts), days: SERVER_DAYS });
      await writeAtomic(join(dir, DEV_TLS_FILES.serverKey), server.keyPem, 0o600);
      await writeAtomic(join(dir, DEV_TLS_FILES.server), server.certPem, 0o644);
      created = true;
    }
    return { caPem: ca.certPem, certPem: server.certPem, keyPem: server.keyPem, created };
  });
}

async function readCa(dir: string): Promise<CertificateKeyPair | undefined> {
  const certPem = await readOptional(join(dir, DEV_TLS_FILES.ca));
  const keyPem = await readOptional(join(dir, DEV_TLS_FILES.caKey));
  if (certPem === undefined || keyPem === undefined) return undefined;
  try {
    const cert = new X509Certificate(certPem);
    // A CA whose key does not match (e.g. a half-written pair) cannot sign; start over.
    if (!cert.ca || !cert.checkPrivateKey(createPrivateKey(keyPem))) return undefined;
    if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return undefined;
  } catch {
    return undefined;
  }
  return { certPem, keyPem };
}

async function readServer(dir: string, ca: CertificateKeyPair, hosts: readonly string[]): Promise<CertificateKeyPair | undefined> {
  const certPem = await readOptional(join(dir, DEV_TLS_FILES.server));
  const keyPem = await readOptional(join(dir, DEV_TLS_FILES.serverKey));
  if (certPem === undefined || keyPem === undefined) return undefined;
  try {
    const cert = new X509Certificate(certPem);
    const caCert = new X509Certificate(ca.certPem);
    if (!cert.verify(caCert.publicKey)) return undefined;
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return undefined;
    if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return undefined;
    for (const host of hosts) {
      // A wildcard entry is covered when a name under it matches (only a wildcard SAN can match that).
      const covered =
        isIP(host) !== 0
          ? cert.checkIP(host)
          : host.startsWith('*.')
            ? cert.checkHost(`portcullis-probe.${host.slice(2)}`, { wildcards: true, partialWildcards: false })
            : cert.checkHost(host, { wildcards: false });
      if (covered === undefined) return undefined;
    }
  } catch {
    return undefined;
  }
  return { certPem, keyPem };
}

function uniqueHosts(hosts: readonly string[]): string[] {
  return [...new Set(hosts.map((h) => h.trim()).filter((h) => h.length > 0))];
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isErrnoCode(err, 'ENOENT')) return undefined;
    throw err;
  }
}

async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    // writeFile's mode is filtered by the umask; chmod makes 0600 on keys certain.
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

// A lock file serialises processes that share one directory (e.g. parallel test files).
async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lockPath = join(dir, LOCK_FILE);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx', 0o600);
      await handle.close();
      break;
    } catch (err) {
      if (!isErrnoCode(err, 'EEXIST')) throw err;
      const age = await stat(lockPath).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > LOCK_STALE_MS) {
        await rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${lockPath}`, { cause: err });
      await delay(25);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockPath, { force: true });
  }
}

function isErrnoCode(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}
