import { stringify } from 'yaml';
import { kubernetesProtocol } from './kubernetes-protocol.js';

/** What a kubeconfig for one Portcullis connection needs. */
export interface KubeconfigSpec {
  /** The edge's public URL, e.g. https://127.0.0.1:8443. */
  edgeUrl: string;
  connection: string;
  /** The cluster's server URL when it is not `<edgeUrl>/k8s/<connection>` (host routing: https://<connection>.<domain>:<port>). */
  serverUrl?: string;
  /** The CA to trust for the edge; undefined: none written, clients use their system roots. */
  caPem: string | undefined;
  /** The exec credential plugin: command and args that print an ExecCredential. */
  exec: { command: string; args: string[]; env?: { name: string; value: string }[] };
  namespace?: string;
}

/**
 * A kubeconfig whose user runs a client-go exec credential plugin, so kubectl fetches and
 * refreshes short-lived tokens itself and no token is ever written into the file.
 */
export function renderKubeconfig(spec: KubeconfigSpec): string {
  const name = `portcullis-${spec.connection}`;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name,
        cluster: {
          server: spec.serverUrl ?? `${spec.edgeUrl.replace(/\/$/, '')}${kubernetesProtocol.prefix}${spec.connection}`,
          ...(spec.caPem !== undefined ? { 'certificate-authority-data': Buffer.from(spec.caPem).toString('base64') } : {}),
        },
      },
    ],
    users: [
      {
        name,
        user: {
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1',
            command: spec.exec.command,
            args: spec.exec.args,
            env: spec.exec.env ?? null,
            interactiveMode: 'Never',
            provideClusterInfo: false,
          },
        },
      },
    ],
    contexts: [{ name, context: { cluster: name, user: name, ...(spec.namespace ? { namespace: spec.namespace } : {}) } }],
    'current-context': name,
  });
}
