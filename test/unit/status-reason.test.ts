/**
 * Every error body the gateway writes says one thing: its `reason` (Kubernetes Status) or `error`
 * (admin JSON) follows its HTTP code. A 502 that said ServiceUnavailable sent client-go's
 * IsServiceUnavailable down the path of a 503.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError, GatewayErrorCode, httpProtocol, kubernetesProtocol } from '@portcullis/gateway';
import { failureStatus, StatusReason, type KubeStatus } from '@portcullis/kube';
import { errorSlug } from '../../apps/runtime/src/process-exception.filter.js';

// metav1.StatusReason documents these codes; 502 has no reason of its own, and client-go reads a 5xx without one as InternalError.
const KUBERNETES_REASON: Readonly<Record<number, string>> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  406: 'NotAcceptable',
  409: 'Conflict',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  502: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

describe('error bodies: reason follows code', () => {
  for (const code of Object.values(GatewayErrorCode)) {
    test(`GatewayError ${code}`, () => {
      const err = new GatewayError(code, 'portcullis: x');
      const status = JSON.parse(kubernetesProtocol.refusalBody(err, 'portcullis: x', 'id')) as KubeStatus;
      assert.equal(status.kind, 'Status');
      assert.equal(status.code, err.httpStatus);
      assert.equal(status.reason, KUBERNETES_REASON[err.httpStatus], `${code}: ${err.httpStatus} ${status.reason}`);
      const json = JSON.parse(httpProtocol.refusalBody(err, 'portcullis: x', 'id')) as { error: string };
      assert.equal(json.error, code, 'the HTTP refusal names the error code itself');
    });
  }

  test('every code the Status builder knows has the Kubernetes reason', () => {
    for (const code of Object.keys(StatusReason).map(Number) as (keyof typeof StatusReason)[]) {
      assert.equal(failureStatus(code, 'm').reason, KUBERNETES_REASON[code], String(code));
    }
  });

  test('admin JSON errors name their status', () => {
    const expected: [number, string][] = [
      [400, 'bad_request'],
      [401, 'unauthenticated'],
      [403, 'forbidden'],
      [404, 'not_found'],
      [405, 'method_not_allowed'],
      [409, 'conflict'],
      [413, 'too_large'],
      [415, 'unsupported_media_type'],
      [429, 'too_many_requests'],
      [500, 'internal'],
      [502, 'bad_gateway'],
      [503, 'unavailable'],
      [504, 'timeout'],
      [507, 'internal'],
    ];
    assert.deepEqual(
      expected.map(([code]) => [code, errorSlug(code)]),
      expected,
    );
  });
});
