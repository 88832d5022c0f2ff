import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { listenUrl } from '@portcullis/common';
import type { PortcullisConfig } from '@portcullis/config';
import { ClientTrustSource, type ClientTrust } from '@portcullis/tls';
// The one rule for what clients trust, shared with the roles that serve the certificate (light: no Nest).
import { edgeClientTrust } from '../../runtime/src/gateway-identity.js';
import { CliError } from './cli-error.js';

/** A URL the CLI calls, and the config key that sets it (named when it cannot be reached). */
export interface Endpoint {
  readonly url: string;
  readonly configKey: string;
}

/** The edge's public base URL as clients should use it. */
export function edgeEndpoint(config: PortcullisConfig): Endpoint {
  if (config.edge.publicUrl !== undefined) return { url: config.edge.publicUrl.replace(/\/$/, ''), configKey: 'edge.publicUrl' };
  return { url: listenUrl('https', config.edge.listen.host, config.edge.listen.port), configKey: 'edge.listen' };
}

/** The edge's public base URL as clients should use it. */
export function edgeUrl(config: PortcullisConfig): string {
  return edgeEndpoint(config).url;
}

/** The approval role's URL as clients should use it. */
export function approvalEndpoint(config: PortcullisConfig): Endpoint {
  const a = config.approval;
  if (a.publicUrl !== undefined) return { url: a.publicUrl.replace(/\/$/, ''), configKey: 'approval.publicUrl' };
  return { url: listenUrl('https', a.listen.host, a.listen.port), configKey: 'approval.listen' };
}

/**
 * What clients should trust for the edge: the development CA, or for a configured certificate
 * `edge.tls.caBundleFile`, the certificate itself when self-signed, else nothing (system roots).
 */
export function edgeTrust(config: PortcullisConfig): ClientTrust {
  const certFile = config.edge.tls.certFile;
  if (certFile !== undefined) {
    try {
      return edgeClientTrust(config, readTextFile(certFile));
    } catch (err) {
      if (err instanceof CliError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new CliError(
        code !== undefined ? `cannot read edge.tls.caBundleFile ${config.edge.tls.caBundleFile ?? ''}: ${code}` : (err as Error).message,
        undefined,
        { cause: err },
      );
    }
  }
  const file = join(config.node.stateDir, 'tls', 'ca.pem');
  if (!existsSync(file)) {
    throw new CliError(`no CA for the edge at ${file}: start the gateway once (npm start) so it creates its development CA`);
  }
  return { caPem: readFileSync(file, 'utf8'), source: ClientTrustSource.DevCa };
}

/**
 * The file holding what clients trust for the edge (for a process that reads it itself, such as
 * the credential plugin); undefined: the system's roots.
 */
export function edgeCaFile(config: PortcullisConfig): string | undefined {
  const trust = edgeTrust(config);
  switch (trust.source) {
    case ClientTrustSource.DevCa:
      return resolve(config.node.stateDir, 'tls', 'ca.pem');
    case ClientTrustSource.CaBundle:
      return config.edge.tls.caBundleFile === undefined ? undefined : resolve(config.edge.tls.caBundleFile);
    case ClientTrustSource.SelfSigned:
      return config.edge.tls.certFile === undefined ? undefined : resolve(config.edge.tls.certFile);
    case ClientTrustSource.SystemRoots:
      return undefined;
  }
}

/** The CA the CLI trusts for the edge; undefined: the system's roots. */
export function edgeCaPem(config: PortcullisConfig): string | undefined {
  return edgeTrust(config).caPem;
}

/** Reads a text file the user named; a CliError naming the file and the reason otherwise. */
export function readTextFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, undefined, { cause: err });
  }
}

/** "… (set by approval.listen in /etc/portcullis.yaml)": where to change a URL that does not answer. */
export function setBy(endpoint: Endpoint, configPath: string): string {
  return `set by ${endpoint.configKey} in ${configPath}`;
}
