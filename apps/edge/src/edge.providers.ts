import type { Provider } from '@nestjs/common';
import type { PortcullisConfig } from '@portcullis/config';
import type { MessageBus } from '@portcullis/bus';
import { ConnectionRegistry, createUpstreamConnection, DecisionCache, DecisionClient, inClusterCredential, type UpstreamConnection } from '@portcullis/gateway';
import { CONFIG, MESSAGE_BUS } from '../../runtime/src/index.js';

/** Connections added at start-up by the process (the embedded sandbox), on top of the config's (`UpstreamConnection[]`). */
export const EXTRA_CONNECTIONS = Symbol('portcullis.extra-connections');

/** The edge's upstream connections and its decision client (shared by the data path and policy explain). */
export function edgeProviders(extraConnections: readonly UpstreamConnection[]): Provider[] {
  return [
    { provide: EXTRA_CONNECTIONS, useValue: extraConnections },
    {
      provide: ConnectionRegistry,
      inject: [CONFIG, EXTRA_CONNECTIONS],
      useFactory: (config: PortcullisConfig, extra: readonly UpstreamConnection[]) =>
        new ConnectionRegistry([
          ...config.connections.map((c) => {
            // Explicit settings win over what the pod's service account provides.
            const inCluster = c.type === 'kubernetes' && c.inCluster ? inClusterCredential(c.serviceAccountDir) : undefined;
            const server = c.server ?? inCluster?.server ?? '';
            const tokenFile = c.tokenFile ?? inCluster?.tokenFile;
            const caFile = c.caFile ?? inCluster?.caFile;
            return createUpstreamConnection({
              name: c.name,
              type: c.type,
              server,
              ...(caFile !== undefined ? { caFile } : {}),
              ...(tokenFile !== undefined ? { tokenFile } : {}),
              ...(c.clientCertFile !== undefined ? { clientCertFile: c.clientCertFile } : {}),
              ...(c.clientKeyFile !== undefined ? { clientKeyFile: c.clientKeyFile } : {}),
              insecureSkipTlsVerify: c.insecureSkipTlsVerify,
              ...(c.type === 'kubernetes' ? { impersonate: c.impersonate, impersonationPrefix: c.impersonationPrefix } : { impersonate: false }),
            });
          }),
          ...extra,
        ]),
    },
    {
      provide: DecisionClient,
      inject: [CONFIG, MESSAGE_BUS],
      useFactory: (config: PortcullisConfig, bus: MessageBus) => {
        const cache = config.edge.decisionCache;
        return new DecisionClient(
          bus,
          config.edge.decisionTimeout,
          cache.enabled ? new DecisionCache({ ttlMs: cache.ttl, maxEntries: cache.maxEntries }) : undefined,
        );
      },
    },
  ];
}
