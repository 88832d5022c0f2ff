/**
 * The Kubernetes API behind `/k8s/<connection>/…`: requests read as the API server's request
 * info (verb, resource, namespace, name…), refusals answered as a `Status` kubectl and client-go
 * print, bodies masked as Kubernetes objects.
 */
import type { RequestAttributes } from '@portcullis/contracts';
import { failureStatus, parseKubeRequest, RequestPathError } from '@portcullis/kube';
import type { MaskTarget } from '@portcullis/masking';
import { ConnectionKind } from './connection-kind.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';
import type { ProtocolAdapter } from './protocol-adapter.js';

// The object kind a resource's bodies hold, so a profile's per-kind rules apply to them.
const KIND_OF_RESOURCE: Readonly<Record<string, string>> = {
  secrets: 'Secret',
  configmaps: 'ConfigMap',
  pods: 'Pod',
  deployments: 'Deployment',
  statefulsets: 'StatefulSet',
  daemonsets: 'DaemonSet',
  replicasets: 'ReplicaSet',
  jobs: 'Job',
  cronjobs: 'CronJob',
  serviceaccounts: 'ServiceAccount',
};

/** The Kubernetes protocol adapter. */
export const kubernetesProtocol: ProtocolAdapter = {
  kind: ConnectionKind.Kubernetes,
  prefix: '/k8s/',
  readAttributes(attributes: RequestAttributes, path: string, query: URLSearchParams): string {
    try {
      attributes.kube = parseKubeRequest(attributes.method, path, query);
      return attributes.kube.path;
    } catch (cause) {
      if (cause instanceof RequestPathError) throw new GatewayError(GatewayErrorCode.BadPath, cause.message, { cause });
      throw cause;
    }
  },
  describe(attributes: RequestAttributes): string {
    const k = attributes.kube;
    if (k?.isResourceRequest !== true) return `${attributes.method} ${k?.path ?? ''}`;
    return `${k.verb} ${k.subresource ? `${k.resource}/${k.subresource}` : k.resource}${k.name ? ` ${k.name}` : ''}${k.namespace ? ` in namespace ${k.namespace}` : ''}`;
  },
  refusalContentType: 'application/json',
  refusalBody(err: GatewayError, message: string): string {
    return JSON.stringify(failureStatus(err.httpStatus, message, err.details));
  },
  maskTarget(attributes: RequestAttributes): MaskTarget {
    const k = attributes.kube;
    const hint = k?.resource === 'serviceaccounts' && k.subresource === 'token' ? 'TokenRequest' : KIND_OF_RESOURCE[k?.resource ?? ''];
    return { mode: 'kubernetes', kindHint: hint };
  },
};
